"""Scores of a set of tasks with several samples each: mean reward, pass@k, majority@k, standard errors.

Every score is first computed per task and then averaged over tasks, so each task weighs the same
however many samples it has; the standard error is the spread of those per-task values over tasks
(samples of one task are not independent draws of the benchmark).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskSamples:
    """The samples of one task: reward, correctness and canonical parsed answer (None: nothing parsed)."""

    rewards: Sequence[float]
    correct: Sequence[bool]
    answers: Sequence[str | None]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), as a product of ratios so large ``n`` neither overflows nor loses precision."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the most frequent parsed answer is right (ties: the answer seen first; its first
    sample's verdict decides). No parsed answer at all counts as wrong."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return False
    top = max(counts.values())
    winner = next(a for a in answers if a is not None and counts[a] == top)
    return bool(correct[list(answers).index(winner)])


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(n)); no error for one value."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to average")
    mean = sum(values) / n
    if n < 2:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def summarise(tasks: Sequence[TaskSamples], ks: Sequence[int] = (1,)) -> dict[str, Any]:
    """Per-task-averaged scores with standard errors. pass@k is reported for each ``k`` that every
    task has samples for; ``maj@N`` (N = samples per task, or ``all`` when they differ) only when
    tasks have more than one sample and some sample had a parsed answer."""
    if not tasks:
        raise ValueError("no tasks to summarise")
    sizes = [len(t.correct) for t in tasks]
    out: dict[str, Any] = {"tasks": len(tasks), "samples": sum(sizes)}
    out["reward"], out["reward_stderr"] = mean_and_stderr([sum(t.rewards) / len(t.rewards) for t in tasks])
    for k in sorted(set(ks)):
        if k <= min(sizes):
            values = [pass_at_k(len(t.correct), sum(map(bool, t.correct)), k) for t in tasks]
            out[f"pass@{k}"], out[f"pass@{k}_stderr"] = mean_and_stderr(values)
    comparable = any(a is not None for t in tasks for a in t.answers)
    if max(sizes) > 1 and comparable:
        name = f"maj@{sizes[0]}" if len(set(sizes)) == 1 else "maj@all"
        values = [float(majority_correct(t.answers, t.correct)) for t in tasks]
        out[name], out[f"{name}_stderr"] = mean_and_stderr(values)
    return out
