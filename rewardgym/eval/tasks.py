"""Which tasks an evaluation covers, and their verification through the vector env.

Task ``i`` of a procedural env is the one of seed ``seed + i`` (the default seed is the learner's
held-out range, disjoint from the seeds GRPO trains on); task ``i`` of a dataset-backed env is
dataset row ``i``, and ``n`` defaults to the whole dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import rewardgym
from rewardgym.core.types import Task, Verdict

EVAL_SEEDS = 20_000_000  # the learner's held-out seeds (rewardgym.trainers.train.EVAL_SEEDS)
DEFAULT_TASKS = 100


@dataclass
class EnvTasks:
    """The tasks of one env id in an evaluation; verifies completions through ``rewardgym.make_vec``."""

    env_id: str
    n: int | None  # None: the whole dataset, or DEFAULT_TASKS seeds
    seed: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = rewardgym.make(self.env_id, **self.kwargs).unwrapped
        self.by_index = self.env.num_tasks is not None
        if self.n is None:
            self.n = self.env.num_tasks if self.by_index else DEFAULT_TASKS
        if self.n < 1:
            raise ValueError(f"--n must be at least 1, got {self.n}")
        if self.by_index and self.n > self.env.num_tasks:
            raise ValueError(f"--n {self.n}: {self.env_id} has only {self.env.num_tasks} tasks")
        self._vec: dict[int, Any] = {}

    def task(self, i: int) -> Task:
        if not 0 <= i < self.n:
            raise IndexError(f"{self.env_id}: task index {i} outside 0..{self.n - 1}")
        return self.env.task_at(i) if self.by_index else self.env.generate(self.seed + i)

    def score(self, tasks: Sequence[Task], completions: Sequence[str]) -> tuple[list[Verdict], list[dict[str, float]]]:
        """The verdict and reward components of each (task, completion), verified as one vector-env batch."""
        size = len(completions)
        if size not in self._vec:  # a batch size needs its own vector env; chunks use one or two sizes
            self._vec[size] = rewardgym.make_vec(self.env_id, num_envs=size, **self.kwargs)
        envs = self._vec[size]
        envs.reset(options={"tasks": list(tasks)})
        _, _, _, _, info = envs.step(list(completions))
        parts = {k: np.asarray(v, dtype=float) for k, v in info.get("reward_components", {}).items()
                 if not k.startswith("_")}
        return list(info["verdict"]), [{k: float(v[j]) for k, v in parts.items()} for j in range(size)]

    def close(self) -> None:
        for envs in self._vec.values():
            envs.close()
        self.env.close()


def env_tasks(env_ids: Sequence[str], n: int | None, seed: int, data: dict[str, str]) -> list[EnvTasks]:
    """One EnvTasks per id (unknown ids fail here, before any model is loaded)."""
    ids = [rewardgym.spec(e).id for e in env_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--env given twice: {ids}")
    stray = set(data) - set(ids)
    if stray:
        raise ValueError(f"--data names env(s) not evaluated: {sorted(stray)}")
    return [EnvTasks(env_id, n, seed, {"data": data[env_id]} if env_id in data else {}) for env_id in ids]
