"""The models an evaluation runs: any directory the learner saves or loads, or a whole run directory.

``--model`` accepts a model directory in Hugging Face layout (``run_dir/start``,
``run_dir/checkpoints/step-000010``, ``run_dir/model`` of ``rewardgym sft``, a downloaded Llama or
Qwen checkpoint) or a run directory, which stands for its ``start`` and every checkpoint in step order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import hash_file

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
MODEL_FILES = ("config.json", "tokenizer.json", *WEIGHT_FILES)


@dataclass(frozen=True)
class ModelRef:
    path: Path
    label: str
    step: int | None  # training step: 0 for a run's start, N for checkpoints/step-N, else None

    def fingerprint(self) -> str:
        """SHA-256 over the model's files (weights, config, tokenizer), so a retrained checkpoint at
        the same path is a different model to the resume logic."""
        digest = hashlib.sha256()
        names = sorted({*MODEL_FILES, *(p.name for p in self.path.glob("model-*.safetensors"))})
        for name in names:
            file = self.path / name
            if file.is_file():
                digest.update(name.encode() + b"\0")
                hash_file(digest, file)
        return digest.hexdigest()


def _is_model(path: Path) -> bool:
    """A model directory has weights beside its config.json (a run directory has a config.json too)."""
    return (path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def _step_of(path: Path) -> int | None:
    if path.name == "start":
        return 0
    match = re.fullmatch(r"step-(\d+)", path.name)
    return int(match.group(1)) if match else None


def resolve_models(paths: list[str]) -> list[ModelRef]:
    """ModelRefs for the ``--model`` arguments; a missing or unrecognised directory is an error naming it."""
    refs: list[ModelRef] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"--model {given}: no such checkpoint directory")
        if _is_model(path):
            refs.append(ModelRef(path, given, _step_of(path)))
            continue
        found = [p for p in [path / "start", *sorted((path / "checkpoints").glob("step-*"))] if _is_model(p)]
        if not found:
            raise FileNotFoundError(f"--model {given}: no model there (config.json and model.safetensors), and not a "
                                    "run directory with start/ or checkpoints/step-*/ holding one")
        refs += [ModelRef(p, str(p), _step_of(p)) for p in found]
    if len({r.path.resolve() for r in refs}) != len(refs):
        raise ValueError(f"--model names the same checkpoint twice: {[r.label for r in refs]}")
    return refs


NEEDS_TORCH = "generating completions needs torch: pip install -e '.[torch]'"


def model_device(setting: str) -> Any:
    """The torch device for the learner's ``device`` setting (see ``rewardgym.trainers.device``)."""
    try:
        from rewardgym.trainers.device import resolve_device
    except ImportError as exc:
        raise ImportError(f"{NEEDS_TORCH} ({exc})") from exc
    return resolve_device(setting)


def load_model(ref: ModelRef) -> tuple[Any, Any]:
    """The DecoderLM and Tokenizer of ``ref``, checked to belong together."""
    try:
        from rewardgym.trainers.models import load_pretrained
    except ImportError as exc:
        raise ImportError(f"{NEEDS_TORCH} ({exc})") from exc
    model, tokenizer = load_pretrained(ref.path)
    if tokenizer is None:
        raise FileNotFoundError(f"{ref.path}: no tokenizer.json beside the model")
    vocab = model.config.vocab_size
    ids = {"largest token id": tokenizer.vocab_size - 1, "eos id": tokenizer.eos_token_id,
           "pad id": tokenizer.pad_token_id}
    bad = {name: value for name, value in ids.items() if value >= vocab}
    if bad:
        needs = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise ValueError(f"{ref.path}: model/tokenizer mismatch: the model has {vocab} token ids but the tokenizer "
                         f"needs more ({needs}); is tokenizer.json from another model?")
    return model.eval(), tokenizer
