"""The PNG of a run's curves (reward, accuracy, response length per step); needs matplotlib."""

from __future__ import annotations

import json
from pathlib import Path


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
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps, [r["reward_mean"] for r in rows], label="reward")
    left.plot(steps, [r["accuracy"] for r in rows], label="accuracy")
    left.set_xlabel("step")
    left.legend()
    right.plot(steps, [r["response_length"] for r in rows], color="tab:green")
    right.set_xlabel("step")
    right.set_ylabel("response length (tokens)")
    fig.suptitle(metrics.parent.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
