"""Entry points for ``rewardgym train`` and ``rewardgym sft`` (the top-level CLI forwards argv here).

Both take ``[--config FILE.yaml] [key=value ...]``; with no arguments ``train`` runs the embedded
example: a tiny in-process tokenizer and decoder, SFT on countdown reference solutions, then GRPO
on rewardgym/Countdown-Easy-v0, writing everything under ``runs/countdown-tiny``.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from ..service import ServiceError
from .config import SFTConfig, TrainConfig, parse_config


def _usage(cls: type, command: str) -> str:
    lines = [f"usage: rewardgym {command} [--config FILE.yaml] [key=value ...]", "settings (defaults):"]
    lines += [f"  {f.name} = {f.default!r}" for f in fields(cls)]
    return "\n".join(lines)


def _run(cls: type, command: str, argv: list[str], body) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(_usage(cls, command))
        return 0
    try:
        cfg = parse_config(cls, argv)
        body(cfg)
    except (ValueError, FileNotFoundError, ImportError, ServiceError) as exc:
        print(f"rewardgym {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def train_main(argv: list[str]) -> int:
    """``rewardgym train``: SFT cold start (optional) then GRPO; see ``TrainConfig``."""
    from .train import train

    return _run(TrainConfig, "train", argv, train)


def sft_main(argv: list[str]) -> int:
    """``rewardgym sft``: fine-tune on (prompt, completion) pairs; the model lands in ``run_dir/model``."""
    from .models import save_pretrained
    from .reporting import close_writer, tensorboard_writer
    from .train import build_policy

    def body(cfg: SFTConfig) -> None:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        writer = tensorboard_writer(Path(cfg.run_dir) / "tensorboard", enabled=cfg.tensorboard)
        try:
            policy, tokenizer = build_policy(cfg, log, writer)
        finally:
            close_writer(writer)
        out = save_pretrained(policy, tokenizer, Path(cfg.run_dir) / "model")
        log(f"saved {out}")

    return _run(SFTConfig, "sft", argv, body)


if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
