"""Curriculum: move a procedural env through difficulty levels by the success rate it observes.

Each level is a set of env kwargs (the env class's ``curriculum`` ladder by default). After every
batch the per-group success (share of correct completions in a group) goes into a window; once the
window is full, a mean above the target band moves one level up, below it one level down, and the
window starts again. ``state_dict``/``load_state_dict`` carry the level and window through the
learner's checkpoints, so a resumed run continues at the same difficulty.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import VectorWrapper

import rewardgym


class Curriculum(VectorWrapper):
    def __init__(self, env_id: str, num_envs: int, *, group_size: int = 1, levels: Sequence[dict] | None = None,
                 target: tuple[float, float] = (0.2, 0.8), window: int = 32, start: int = 0, **vec_kwargs: Any):
        entry = rewardgym.spec(env_id)
        if levels is None:
            levels = getattr(rewardgym.load_object(entry.entry_point), "curriculum", None)
        if not levels:
            raise ValueError(f"{entry.id} has no difficulty ladder: pass levels=[{{kwargs}}, ...]")
        lo, hi = target
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"target must be a band 0 <= low < high <= 1, got {target}")
        if not 0 <= start < len(levels):
            raise ValueError(f"start level {start} outside 0..{len(levels) - 1}")
        self.env_id, self.levels, self.target = entry.id, [dict(level) for level in levels], (lo, hi)
        self.num_envs_, self.group_size, self.vec_kwargs = num_envs, group_size, vec_kwargs
        self.level = start
        self.window: deque[float] = deque(maxlen=window)
        super().__init__(self._build())

    def _build(self):
        return rewardgym.make_vec(self.env_id, self.num_envs_, group_size=self.group_size,
                                  **{**self.vec_kwargs, **self.levels[self.level]})

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        correct = np.array([v.correct for v in info["verdict"]], dtype=float)
        groups = np.asarray(info["group"])
        self.window.extend(float(correct[groups == g].mean()) for g in np.unique(groups))
        if len(self.window) == self.window.maxlen:
            self._move(float(np.mean(self.window)))
        info = {**info, "curriculum_level": np.full(len(rewards), self.level), "_curriculum_level": info["_verdict"]}
        return obs, rewards, terminated, truncated, info

    def _move(self, success: float) -> None:
        lo, hi = self.target
        step = 1 if success > hi else -1 if success < lo else 0
        new = min(max(self.level + step, 0), len(self.levels) - 1)
        if new != self.level:
            self.level = new
            self.env.close()
            self.env = self._build()
        self.window.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "level": self.level, "window": list(self.window), "levels": self.levels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["env_id"] != self.env_id or state["levels"] != self.levels:
            raise ValueError("curriculum state is from another env or ladder")
        if state["level"] != self.level:
            self.level = state["level"]
            self.env.close()
            self.env = self._build()
        self.window.clear()
        self.window.extend(state["window"])
