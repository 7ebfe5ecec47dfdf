"""The PNG of a run's curves (reward, accuracy, response length per step); needs matplotlib.

Per-step values of a small GRPO batch are noisy, so each curve is drawn faint with its trailing
moving average over it: the trend is what a reader looks for."""

from __future__ import annotations

import json
from pathlib import Path


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each value and the up to ``window - 1`` before it."""
    sums = [0.0]
    for value in values:
        sums.append(sums[-1] + value)
    return [(sums[i + 1] - sums[max(0, i + 1 - window)]) / min(i + 1, window) for i in range(len(values))]


def _curve(axes, steps: list[int], values: list[float], label: str, color: str, window: int) -> None:
    axes.plot(steps, values, color=color, alpha=0.3, linewidth=0.8)
    axes.plot(steps, moving_average(values, window), color=color, label=f"{label} ({window}-step mean)")


def plot_curves(metrics: Path, out: Path) -> Path | None:
    """Plot ``metrics.jsonl`` to ``out``; None when matplotlib is not installed or there are no rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    window = max(1, len(rows) // 20)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _curve(left, steps, [r["reward_mean"] for r in rows], "reward", "tab:blue", window)
    _curve(left, steps, [r["accuracy"] for r in rows], "accuracy", "tab:orange", window)
    left.set_xlabel("step")
    left.legend()
    _curve(right, steps, [r["response_length"] for r in rows], "length", "tab:green", window)
    right.set_xlabel("step")
    right.set_ylabel("response length (tokens)")
    fig.suptitle(metrics.parent.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
