"""How a run shows its progress: a tqdm bar on a terminal, plain per-step lines elsewhere, and
optionally TensorBoard event files.

The bar appears only when tqdm is installed and both stdout and stderr are terminals; redirected
or piped output (CI logs, ``nohup``) keeps one readable line per step instead of bar redraws.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Log = Callable[[str], None]


def _tqdm() -> Any | None:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Step counter for one stage: ``step(line, stats)`` once per step, ``close()`` at the end.

    With a bar, ``stats`` becomes its postfix and ``line`` is dropped; without one, ``line`` goes to
    ``log`` when ``show_line`` is true (so a caller can log every Nth step only)."""

    def __init__(self, total: int, *, desc: str, log: Log, initial: int = 0, enabled: bool = True):
        self.log = log
        tqdm = _tqdm() if enabled and sys.stdout.isatty() and sys.stderr.isatty() else None
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True) if tqdm else None

    def step(self, line: str, stats: Mapping[str, float], *, show_line: bool = True) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items()}, refresh=False)
            self.bar.update(1)
        elif show_line:
            self.log(line)

    def write(self, message: str) -> None:
        """A message that must not tear the bar (tqdm.write above it)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            self.log(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def tensorboard_writer(log_dir: Path, *, enabled: bool = True, purge_step: int | None = None) -> Any | None:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` (None when not ``enabled``);
    ``purge_step`` drops events a resumed run will write again. Raises ImportError naming the
    missing package."""
    if not enabled:
        return None
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError("tensorboard=true needs the 'tensorboard' package: pip install tensorboard "
                          "(or pip install 'rewardgym[tensorboard]')") from exc
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def close_writer(writer: Any | None) -> None:
    if writer is not None:
        writer.close()


def add_scalars(writer: Any | None, prefix: str, row: Mapping[str, Any], step: int) -> None:
    """Every numeric value of ``row`` as ``prefix/key`` at ``step`` (no-op without a writer)."""
    if writer is None:
        return
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
            writer.add_scalar(f"{prefix}/{key}", value, step)
