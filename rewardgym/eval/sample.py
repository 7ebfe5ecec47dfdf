"""Rejection sampling: keep the verified completions of an evaluation as SFT pairs (R1's stage-3 and
distillation data), in the Parquet layout ``rewardgym sft`` reads (``prompt`` and ``completion``
columns; the others say where each pair came from)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

COLUMNS = ["prompt", "completion", "model", "env_id", "task_id", "sample", "reward", "completion_tokens"]


def _length(row: dict[str, Any]) -> int:
    """Tokens when the generator counted them, else characters (completions from a file)."""
    return row["completion_tokens"] if row["completion_tokens"] is not None else len(row["completion"])


def select(table: pa.Table, *, keep: str = "correct", shortest: int | None = None) -> pa.Table:
    """The rows to train on: every row (``keep="all"``) or the correct ones, optionally only the
    ``shortest`` per (model, env, task), ties broken by sample number. Row order is kept."""
    if keep not in ("correct", "all"):
        raise ValueError(f"--keep must be 'correct' or 'all', got {keep!r}")
    if shortest is not None and shortest < 1:
        raise ValueError(f"--shortest must be at least 1, got {shortest}")
    rows = [r for r in table.select(COLUMNS + ["correct", "task_index"]).to_pylist() if keep == "all" or r["correct"]]
    chosen = range(len(rows))
    if shortest is not None:
        by_task: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_task[(r["model"], r["env_id"], r["task_index"])].append(i)
        chosen = sorted(i for group in by_task.values()
                        for i in sorted(group, key=lambda i: (_length(rows[i]), rows[i]["sample"]))[:shortest])
    schema = pa.schema([table.schema.field(c) for c in COLUMNS])
    return pa.Table.from_pylist([{c: rows[i][c] for c in COLUMNS} for i in chosen], schema=schema)
