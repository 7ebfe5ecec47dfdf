"""From rows to scores: per model and env (and overall), as a printed table, JSON and a PNG by step."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from .metrics import TaskSamples, summarise

OVERALL = "overall"


def _tasks(rows: list[dict[str, Any]]) -> list[TaskSamples]:
    by_task: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[(row["env_id"], row["task_index"])].append(row)
    return [TaskSamples([r["reward"] for r in group], [r["correct"] for r in group], [r["parsed"] for r in group])
            for group in by_task.values()]


def scores(table: pa.Table, ks: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One record per (model, env) and per model overall (all tasks of all envs, each task weighing
    the same). pass@k for each of ``ks`` (default: 1 and the number of samples per task)."""
    columns = ["model", "step", "env_id", "task_index", "reward", "correct", "parsed"]
    rows = table.select(columns).to_pylist()
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
    out = []
    for model, model_rows in by_model.items():
        by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in model_rows:
            by_env[row["env_id"]].append(row)
        groups = list(by_env.items()) + ([(OVERALL, model_rows)] if len(by_env) > 1 else [])
        for env_id, env_rows in groups:
            tasks = _tasks(env_rows)
            chosen = ks or (1, min(len(t.correct) for t in tasks))
            out.append({"model": model, "step": model_rows[0]["step"], "env_id": env_id, **summarise(tasks, chosen)})
    return out


def _cell(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    error = record.get(f"{name}_stderr")
    return f"{value:.3f}" + (f"±{error:.3f}" if error is not None else "")


def table_text(records: list[dict[str, Any]]) -> str:
    """The scores as an aligned text table; ± is one standard error over tasks."""
    metrics = ["reward"] + list(dict.fromkeys(k for r in records for k in r
                                                    if k.startswith(("pass@", "maj@")) and not k.endswith("_stderr")))
    header = ["model", "step", "env", "tasks", "samples", *metrics]
    lines = [[r["model"], "-" if r["step"] is None else str(r["step"]), r["env_id"], _cell(r, "tasks"),
              _cell(r, "samples"), *(_cell(r, m) for m in metrics)] for r in records]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *lines])


def plot_by_step(records: list[dict[str, Any]], out: Path, metric: str = "pass@1") -> Path | None:
    """pass@1 (with standard-error bars) against checkpoint step, one line per env; None without
    matplotlib or with fewer than two models. Models without a step are placed by their order."""
    models = list(dict.fromkeys(r["model"] for r in records))
    if len(models) < 2:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps = {r["model"]: r["step"] for r in records}
    by_step = all(steps[m] is not None for m in models)
    x_of = {m: steps[m] if by_step else i for i, m in enumerate(models)}
    fig, axis = plt.subplots(figsize=(7, 4))
    for env_id in dict.fromkeys(r["env_id"] for r in records):
        points = sorted((x_of[r["model"]], r.get(metric), r.get(f"{metric}_stderr") or 0.0)
                        for r in records if r["env_id"] == env_id and r.get(metric) is not None)
        if points:
            xs, ys, errors = zip(*points)
            axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=env_id)
    if not by_step:
        axis.set_xticks(range(len(models)), models, rotation=20, ha="right")
    axis.set_xlabel("checkpoint step" if by_step else "model")
    axis.set_ylabel(metric)
    axis.set_ylim(-0.02, 1.02)
    axis.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
