"""TextVectorEnv: a batch of single-turn tasks verified in parallel, with GRPO groups and mixtures.

``reset`` yields ``num_envs`` prompts: ``num_envs / group_size`` distinct tasks, each repeated
``group_size`` times in consecutive slots (a GRPO group). ``step(completions)`` verifies the
whole batch: in-process verifiers inline, offloaded ones (math pool, code sandbox) concurrently,
or on a verifier service when ``remote`` is given. Every episode ends at that step, so the
autoreset mode is DISABLED: call ``reset`` again for the next batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .core.env import TextEnv
from .core.types import Task, Verdict


def _per_env(env_of: Sequence[str], items: Sequence[Any], call: Any) -> list[Any]:
    """``call(env_id, its items)`` once per env id (first-seen order); results back in item order."""
    out: list[Any] = [None] * len(items)
    for env_id in dict.fromkeys(env_of):
        slots = [i for i, e in enumerate(env_of) if e == env_id]
        for i, result in zip(slots, call(env_id, [items[i] for i in slots]), strict=True):
            out[i] = result
    return out


def _objects(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class TextVectorEnv(VectorEnv):
    """Args:
      envs: one id, or ``{id: weight}`` for a multi-task mixture (each group draws its env).
      num_envs: batch size; must be a multiple of ``group_size``.
      group_size: how many slots share one task (G in GRPO).
      threads: parallel checks for offloaded verifiers (default: 4 per core).
      remote: URL of a ``rewardgym serve`` service that makes tasks and verifies instead.
      env_kwargs: passed to each env (single id only).
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(self, envs: str | Mapping[str, float], num_envs: int = 1, *, group_size: int = 1,
                 threads: int | None = None, remote: str | None = None, **env_kwargs: Any):
        import rewardgym

        weights = {envs: 1.0} if isinstance(envs, str) else dict(envs)
        if not weights or any(w <= 0 for w in weights.values()):
            raise ValueError(f"envs must be an id or a mapping of ids to positive weights, got {envs!r}")
        if env_kwargs and len(weights) > 1:
            raise ValueError("env kwargs apply to a single env id, not to a mixture")
        if num_envs < 1 or group_size < 1 or num_envs % group_size:
            raise ValueError(f"num_envs ({num_envs}) must be a positive multiple of group_size ({group_size})")
        self.ids = [rewardgym.spec(i).id for i in weights]
        total = sum(weights.values())
        self.weights = np.array([weights[k] / total for k in weights])
        self.num_envs, self.group_size, self.threads = num_envs, group_size, threads
        self.client = None
        if remote is not None:
            from .service import Client
            self.client = Client(remote)
        self.envs: dict[str, TextEnv] = {i: rewardgym.make(i, **env_kwargs).unwrapped for i in self.ids}
        first = self.envs[self.ids[0]]
        self.single_observation_space, self.single_action_space = first.observation_space, first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        entry = rewardgym.spec(self.ids[0])
        if remote is not None and env_kwargs.get("verifier", entry.verifier) != entry.verifier:
            raise ValueError("a custom verifier cannot be sent to a remote service")
        # What the user changed from the registry: the only kwargs a remote service receives.
        self.env_kwargs = {k: v for k, v in env_kwargs.items()
                           if k != "verifier" and (k not in entry.kwargs or entry.kwargs[k] != v)}
        self._tasks: list[Task] = []
        self._env_of: list[str] = []

    @property
    def num_groups(self) -> int:
        return self.num_envs // self.group_size

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[tuple[str, ...], dict[str, Any]]:
        """``seed``: group j gets task seed ``seed + j``; ``options={"tasks": [...]}`` sets the tasks
        (one per group or one per slot) and ``options={"indices": [...]}`` picks dataset rows."""
        seeds = self._group_seeds(seed)
        options = options or {}
        choice = np.random.default_rng(seeds[0]).choice(len(self.ids), size=self.num_groups, p=self.weights)
        group_env = [self.ids[k] for k in choice]
        if "tasks" in options:
            tasks = [t if isinstance(t, Task) else Task.from_dict(t) for t in options["tasks"]]
            if len(tasks) == self.num_envs:
                self._tasks, self._env_of = tasks, [e for e in group_env for _ in range(self.group_size)]
                return self._observe()
            if len(tasks) != self.num_groups:
                raise ValueError(f"options['tasks'] needs {self.num_groups} (one per group) or {self.num_envs} tasks, got {len(tasks)}")
        elif "indices" in options:
            indices = [int(i) for i in options["indices"]]
            if len(indices) != self.num_groups:
                raise ValueError(f"options['indices'] needs {self.num_groups} indices (one per group), got {len(indices)}")
            tasks = self._make_tasks(group_env, indices=indices)
        else:
            tasks = self._make_tasks(group_env, seeds=seeds)
        self._tasks = [t for t in tasks for _ in range(self.group_size)]
        self._env_of = [e for e in group_env for _ in range(self.group_size)]
        return self._observe()

    def _group_seeds(self, seed: int | Sequence[int] | None) -> list[int]:
        """One task seed per group from an int (``seed + j``), a list with one seed per group, or a
        list with one per slot (gymnasium's convention; slots of a group must then agree)."""
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=None if seed is None else int(seed))
            base = int(self.np_random.integers(0, 2**31 - 1 - self.num_groups)) if seed is None else int(seed)
            return [base + j for j in range(self.num_groups)]
        seeds = [int(s) for s in seed]
        if len(seeds) == self.num_envs and self.group_size > 1:
            groups = [seeds[j * self.group_size:(j + 1) * self.group_size] for j in range(self.num_groups)]
            if any(len(set(g)) != 1 for g in groups):
                raise ValueError("per-slot seeds must be equal within each group of group_size slots")
            seeds = [g[0] for g in groups]
        if len(seeds) != self.num_groups:
            raise ValueError(f"reset(seed=[...]) needs {self.num_groups} seeds (one per group) or {self.num_envs} (one per slot), got {len(seeds)}")
        super().reset(seed=seeds[0])
        return seeds

    def _make_tasks(self, group_env: list[str], *, seeds: list[int] | None = None,
                    indices: list[int] | None = None) -> list[Task]:
        """One task per group; one service call per env id when remote."""
        by_index = indices is not None

        def make(env_id: str, keys: list[int]) -> list[Task]:
            if self.client is not None:
                return self.client.tasks(env_id, kwargs=self.env_kwargs, **{"indices" if by_index else "seeds": keys})
            env = self.envs[env_id]
            return [env.task_at(k) if by_index else env.generate(k) for k in keys]

        return _per_env(group_env, indices if by_index else seeds, make)

    def _observe(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        from .core.prompts import as_text
        return tuple(as_text(t.prompt) for t in self._tasks), self._slot_info()

    def _slot_info(self) -> dict[str, Any]:
        """What reset and step both report per slot: task, env id and group."""
        mask = np.ones(self.num_envs, dtype=bool)
        return {"task": _objects(self._tasks), "_task": mask, "env_id": _objects(self._env_of), "_env_id": mask,
                "group": np.repeat(np.arange(self.num_groups), self.group_size), "_group": mask}

    def step(self, actions: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._tasks:
            raise RuntimeError("call reset() before step()")
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"step() needs {self.num_envs} completions, got {len(actions)}")
        if not all(isinstance(a, str) for a in actions):
            raise TypeError("step() takes completions as str")
        verdicts = self.verify(actions)
        rewards = np.array([v.reward for v in verdicts], dtype=np.float64)
        mask = np.ones(self.num_envs, dtype=bool)
        info = {**self._slot_info(), "verdict": _objects(verdicts), "_verdict": mask,
                "reward_components": {"correctness": rewards.copy(), "_correctness": mask}, "_reward_components": mask}
        self._tasks, self._env_of = [], []
        return ("",) * self.num_envs, rewards, np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool), info

    def verify(self, completions: list[str]) -> list[Verdict]:
        """Verdicts for the current tasks, one call per env id, in slot order."""

        def check(env_id: str, pairs: list[tuple[str, Task]]) -> list[Verdict]:
            batch_c, batch_t = [c for c, _ in pairs], [t for _, t in pairs]
            if self.client is not None:
                return self.client.score(env_id, batch_c, batch_t, kwargs=self.env_kwargs)
            return self.envs[env_id].verifier.verify_batch(batch_c, batch_t, threads=self.threads)

        return _per_env(self._env_of, list(zip(completions, self._tasks)), check)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs.values():
            env.close()


@dataclass(frozen=True)
class VectorEntryPoint:
    """What ``gym.make_vec`` calls for a rewardgym id (a value, so env specs compare equal)."""

    env_id: str

    def __call__(self, num_envs: int = 1, **kwargs: Any) -> TextVectorEnv:
        return TextVectorEnv(self.env_id, num_envs, **kwargs)
