"""Save and load models in Hugging Face layout: ``config.json``, ``model.safetensors`` (or shards
with ``model.safetensors.index.json``) and ``tokenizer.json``.

Reads Llama, Qwen2, Qwen3, Qwen3-MoE and DeepSeek-V3 checkpoints as ``transformers`` writes them
(experts one by one or fused); writes ours as one of those, so the same directory opens in
``transformers``. Writing goes through a temporary directory that is renamed into place, so a
crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .decoder import DecoderLM
from .moe import unfuse_experts
from .tokenizer import Tokenizer

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


def save_pretrained(model: DecoderLM, tokenizer: Tokenizer | None, directory: str | Path) -> Path:
    """Write the model (and tokenizer) to ``directory``, replacing it atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write_model_files(model, tokenizer, tmp)
        replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def write_model_files(model: DecoderLM, tokenizer: Tokenizer | None, directory: Path) -> None:
    """config.json, model.safetensors and tokenizer.json into an existing directory."""
    config = model.config
    if tokenizer is not None:
        config.eos_token_id, config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
        tokenizer.save(directory)
    config.save(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})


def replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is swapped out first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_state(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a single-file or sharded safetensors checkpoint."""
    if (directory / WEIGHTS).is_file():
        return load_file(str(directory / WEIGHTS))
    if (directory / INDEX).is_file():
        shards = sorted(set(json.loads((directory / INDEX).read_text(encoding="utf-8"))["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(directory / shard)))
        return state
    raise FileNotFoundError(f"{directory}: no {WEIGHTS} or {INDEX}")


def load_pretrained(directory: str | Path, *, dtype: torch.dtype = torch.float32,
                    with_tokenizer: bool = True) -> tuple[DecoderLM, Tokenizer | None]:
    """A DecoderLM (and its Tokenizer) from a Hugging Face-layout directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: model directory not found")
    config = ModelConfig.load(directory)
    model = DecoderLM(config)
    state = load_state(directory)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    # DeepSeek-V3 stores its multi-token-prediction module as layers past num_hidden_layers: unused here
    extra_layers = tuple(f"model.layers.{i}." for i in range(config.num_hidden_layers, config.num_hidden_layers + 8))
    state = unfuse_experts({k: v for k, v in state.items()
                            if not k.endswith("rotary_emb.inv_freq") and not k.startswith(extra_layers)})
    missing, unexpected = model.load_state_dict(state, strict=False)
    # a balancing bias absent from the checkpoint (Qwen3-MoE has none) starts at zero
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")
               and not k.endswith("gate.e_score_correction_bias")]
    if missing or unexpected:
        raise ValueError(f"{directory}: weights do not match config.json: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    model.to(dtype)
    tokenizer = None
    if with_tokenizer and (directory / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(directory, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)
    return model, tokenizer
