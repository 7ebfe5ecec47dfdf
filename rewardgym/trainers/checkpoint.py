"""Atomic training checkpoints: the model in Hugging Face layout plus ``trainer_state.pt``
(optimizer, RNG states, step, data cursor, config).

Layout under the run directory::

    checkpoints/step-000010/{config.json, model.safetensors, tokenizer.json, trainer_state.pt}
    checkpoints/latest          the name of the newest complete checkpoint

A checkpoint is written to a temporary directory and renamed into place, then ``latest`` is
replaced atomically; a run killed at any moment leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .models import DecoderLM, Tokenizer, load_pretrained
from .models.hub import replace_dir, write_model_files

STATE = "trainer_state.pt"


def write_atomic(path: Path, text: str) -> None:
    """Replace a small text file atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def rng_states() -> dict[str, Any]:
    """Global RNG states as tensors and tuples, so ``torch.load(weights_only=True)`` reads them."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def save_checkpoint(run_dir: Path, step: int, model: DecoderLM, tokenizer: Tokenizer,
                    optimizer: torch.optim.Optimizer, extra: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` (completed steps) and point ``latest`` at it; keep the newest ``keep``."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for debris in root.glob(".step-*"):  # left by a run killed while writing
        shutil.rmtree(debris, ignore_errors=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        write_model_files(model, tokenizer, tmp)
        torch.save({"step": step, "optimizer": _on_cpu(optimizer.state_dict()), "rng": rng_states(), **extra},
                   tmp / STATE)
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_atomic(root / "latest", final.name + "\n")
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _on_cpu(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict with its tensors on the CPU, so a checkpoint loads on any device."""
    state = {index: {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
             for index, values in optimizer_state["state"].items()}
    return {**optimizer_state, "state": state}


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE).is_file():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(path: Path) -> tuple[DecoderLM, Tokenizer, dict[str, Any]]:
    """Model, tokenizer and trainer state of a checkpoint, on the CPU (RNG states are not applied here)."""
    model, tokenizer = load_pretrained(path)
    state = torch.load(path / STATE, weights_only=True, map_location="cpu")
    return model, tokenizer, state
