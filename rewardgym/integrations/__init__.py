"""Thin adapters that plug rewardgym environments into other trainers (TRL, verl)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import rewardgym

from ..core.types import Task


def sample_tasks(env_id: str, n: int, *, seed: int = 0, **env_kwargs: Any) -> Iterator[Task]:
    """``n`` tasks: rows 0..n-1 of a dataset env, or seeds ``seed..seed+n-1`` of a procedural one."""
    env = rewardgym.make(env_id, **env_kwargs).unwrapped
    if env.num_tasks is not None:
        if n > env.num_tasks:
            raise ValueError(f"{env_id} has {env.num_tasks} tasks, asked for {n}")
        return (env.task_at(i) for i in range(n))
    return (env.generate(seed + i) for i in range(n))


def task_json(task: Task) -> str:
    """Tasks travel through other libraries' tables as JSON text (their fields differ per env)."""
    return json.dumps(task.to_dict(), sort_keys=True)


def task_from(value: Any) -> Task:
    if isinstance(value, Task):
        return value
    return Task.from_dict(json.loads(value) if isinstance(value, str) else value)
