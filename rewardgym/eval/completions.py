"""Completions produced elsewhere (vLLM, an API, another harness), read for verification only.

A ``.jsonl`` file (one JSON object a line) or a ``.parquet`` file with these fields per row:

  completion         str, required: the model's output for the task.
  task_index         int: the task's position in the evaluation (seed ``--seed + i``, or dataset row i),
  task_id            str: or the task's id (``Task.id``, e.g. ``countdown-20000003``); one of the two.
  env_id             str: which ``--env`` the task belongs to; required when several are given.
  sample             int, optional: the sample's number within its task (default: order in the file).
  prompt             str, optional: the prompt the other system used, kept in the results as given
                     (default: the environment's prompt).
  completion_tokens  int, optional: kept in the results.

Tasks come from the environment, never from the file, so a file cannot change what is checked.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import hash_file
from .tasks import EnvTasks

FIELDS = {"completion", "task_index", "task_id", "env_id", "sample", "prompt", "completion_tokens"}


@dataclass(frozen=True)
class External:
    """One completion from the file, placed at its task and sample number."""

    task_index: int
    sample: int
    completion: str
    prompt: str | None
    completion_tokens: int | None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    hash_file(digest, path)
    return digest.hexdigest()


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) per row: ``file:line`` for JSONL, ``file: row i`` for Parquet."""
    if not path.is_file():
        raise FileNotFoundError(f"--completions {path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(f"{path}: row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
    if path.suffix != ".jsonl":
        raise ValueError(f"--completions {path}: expected a .jsonl or .parquet file")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
    return out


def _check(where: str, row: Any) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    unknown = set(row) - FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(FIELDS)}")
    if not isinstance(row.get("completion"), str):
        raise ValueError(f"{where}: 'completion' must be a string")
    if (row.get("task_index") is None) == (row.get("task_id") is None):
        raise ValueError(f"{where}: give exactly one of 'task_index' and 'task_id'")
    for name, kind in (("task_index", int), ("sample", int), ("completion_tokens", int), ("task_id", str),
                       ("prompt", str), ("env_id", str)):
        value = row.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{where}: '{name}' must be {kind.__name__}, got {value!r}")


def read_completions(path: Path, envs: Mapping[str, EnvTasks]) -> dict[str, list[External]]:
    """The file's completions per env id, sorted by (task_index, sample); errors name the file and line."""
    ids_by_env: dict[str, dict[str, int]] = {}
    out: dict[str, list[External]] = defaultdict(list)
    seen: dict[tuple[str, int, int], str] = {}
    next_sample: dict[tuple[str, int], int] = defaultdict(int)
    for where, row in _records(path):
        _check(where, row)
        env_id = row.get("env_id")
        if env_id is None:
            if len(envs) > 1:
                raise ValueError(f"{where}: 'env_id' is required when several --env are given")
            env_id = next(iter(envs))
        env = _env_of(envs, env_id, where)
        if row.get("task_index") is not None:
            index = row["task_index"]
            if not 0 <= index < env.n:
                raise ValueError(f"{where}: task_index {index} outside 0..{env.n - 1} of {env.env_id}; raise --n")
        else:
            if env.env_id not in ids_by_env:
                ids_by_env[env.env_id] = {env.task(i).id: i for i in range(env.n)}
            index = ids_by_env[env.env_id].get(row["task_id"])
            if index is None:
                raise ValueError(f"{where}: task_id {row['task_id']!r} is not among the {env.n} tasks of {env.env_id} "
                                 "(see --n and --seed)")
        sample = row.get("sample")
        if sample is None:
            sample = next_sample[(env.env_id, index)]
        next_sample[(env.env_id, index)] = max(next_sample[(env.env_id, index)], sample + 1)
        key = (env.env_id, index, sample)
        if key in seen:
            raise ValueError(f"{where}: task {index} sample {sample} of {env.env_id} already given at {seen[key]}")
        seen[key] = where
        out[env.env_id].append(External(index, sample, row["completion"], row.get("prompt"),
                                        row.get("completion_tokens")))
    if not seen:
        raise ValueError(f"--completions {path}: no rows")
    return {env_id: sorted(items, key=lambda e: (e.task_index, e.sample)) for env_id, items in out.items()}


def _env_of(envs: Mapping[str, EnvTasks], env_id: str, where: str) -> EnvTasks:
    import rewardgym

    full = rewardgym.full_id(env_id)
    if full not in envs:
        raise ValueError(f"{where}: env_id {env_id!r} is not one of the --env ids {sorted(envs)}")
    return envs[full]
