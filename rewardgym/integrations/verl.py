"""verl adapter: a ``compute_score`` for verl's custom reward function hook, and a Parquet exporter
in the columns verl's RL datasets use (data_source, prompt, ability, reward_model, extra_info).

    python -c "from rewardgym.integrations.verl import export_parquet; export_parquet('rewardgym/Countdown-v0', 'train.parquet', 10000)"
    # verl config: data.train_files=train.parquet
    #              custom_reward_function.path=<site-packages>/rewardgym/integrations/verl.py
    #              custom_reward_function.name=compute_score
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import rewardgym

from . import sample_tasks, task_from, task_json


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None) -> dict[str, float]:
    """verl's reward hook: ``data_source`` is the env id and ``ground_truth`` the task as JSON.
    Returns ``score`` (the reward) and ``acc`` (1.0 when correct), which verl logs apart."""
    (verdict,) = rewardgym.score(data_source, [solution_str], [task_from(ground_truth)])
    return {"score": float(verdict.reward), "acc": float(verdict.correct)}


def export_parquet(env_id: str, path: str | Path, n: int, *, seed: int = 0, split: str = "train",
                   overwrite: bool = False, **env_kwargs: Any) -> Path:
    """Write ``n`` tasks as verl rows (chat prompts). Refuses to replace an existing file unless
    ``overwrite``; writes to a temporary file first, so a crash never leaves a partial Parquet."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    entry = rewardgym.spec(env_id)
    rows = [{"data_source": entry.id, "prompt": task.prompt, "ability": entry.tags[0] if entry.tags else "reasoning",
             "reward_model": {"style": "rule", "ground_truth": task_json(task)},
             "extra_info": {"split": split, "index": i, "task_id": task.id}}
            for i, task in enumerate(sample_tasks(env_id, n, seed=seed, chat=True, **env_kwargs))]
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
    return path
