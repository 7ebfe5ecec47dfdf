"""TRL adapter: a reward function with GRPOTrainer's signature, and a prompt dataset builder.

    from rewardgym.integrations.trl import reward_func, to_dataset
    trainer = GRPOTrainer(model=..., reward_funcs=[reward_func("rewardgym/Countdown-v0")],
                          train_dataset=to_dataset("rewardgym/Countdown-v0", 1000), args=GRPOConfig(...))

TRL hands every dataset column back to reward functions as keyword lists; the ``task`` column
carries each row's task as JSON so the verifier sees exactly the task the prompt came from.
"""

from __future__ import annotations

from typing import Any, Callable

import rewardgym

from . import sample_tasks, task_from, task_json


def _text(completion: Any) -> str:
    """TRL passes plain strings, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"completion must be a string or a list of messages, got {type(completion).__name__}")


def reward_func(env_id: str, *, remote: str | None = None, task_column: str = "task") -> Callable[..., list[float]]:
    """A GRPOTrainer reward function for ``env_id`` (verified locally, or on a service at ``remote``)."""
    full = rewardgym.spec(env_id).id

    def rewardgym_reward(prompts: list | None = None, completions: list | None = None, **columns: Any) -> list[float]:
        if task_column not in columns:
            raise KeyError(f"the dataset has no {task_column!r} column; build it with rewardgym.integrations.trl.to_dataset")
        texts = [_text(c) for c in completions or []]
        tasks = [task_from(t) for t in columns[task_column]]
        if remote is not None:
            from ..service import Client
            verdicts = Client(remote).score(full, texts, tasks)
        else:
            verdicts = rewardgym.score(full, texts, tasks)
        return [float(v.reward) for v in verdicts]

    rewardgym_reward.__name__ = "rewardgym_" + full.split("/", 1)[1].replace("-", "_").replace(".", "_")
    return rewardgym_reward


def to_dataset(env_id: str, n: int, *, seed: int = 0, chat: bool = True, **env_kwargs: Any):
    """A ``datasets.Dataset`` with ``prompt`` (chat messages, or text with ``chat=False``), ``task``
    (JSON) and ``task_id`` columns: one row per task."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise ImportError("to_dataset needs the 'datasets' package: pip install datasets") from exc
    tasks = list(sample_tasks(env_id, n, seed=seed, chat=chat, **env_kwargs))
    return Dataset.from_dict({"prompt": [t.prompt for t in tasks], "task": [task_json(t) for t in tasks],
                              "task_id": [t.id for t in tasks]})
