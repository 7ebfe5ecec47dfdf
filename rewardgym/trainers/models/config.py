"""ModelConfig: the hyperparameters of the decoder, and their Hugging Face ``config.json`` form.

The field names are Hugging Face's, so a Llama, Qwen2 or Qwen3 ``config.json`` maps onto this
dataclass with few translations, and ours is written back as one of those model types (so
``transformers`` can load what we save).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: model_type -> the flags that differ between the three families we read and write.
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"architectures": ["LlamaForCausalLM"]},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"]},  # q/k/v projections always carry a bias
    "qwen3": {"architectures": ["Qwen3ForCausalLM"]},  # RMSNorm on each head's queries and keys
}


@dataclass
class ModelConfig:
    """A dense decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 176
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int | None = None
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    model_type: str = "llama"
    attention_bias: bool = False  # bias on the attention projections (always on q/k/v for Qwen2)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    fp8: bool = False  # projections as FP8Linear (models/fp8.py); how to compute, not saved in config.json

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        problems = []
        if self.model_type not in FAMILIES:
            problems.append(f"model_type {self.model_type!r} not one of {sorted(FAMILIES)}")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                            f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim % 2:
            problems.append(f"head_dim must be even for RoPE, got {self.head_dim}")
        if problems:
            raise ValueError("ModelConfig: " + "; ".join(problems))
        if self.model_type == "qwen2":
            self.attention_bias = True

    @property
    def qk_norm(self) -> bool:
        """Qwen3 normalises each head's queries and keys before RoPE."""
        return self.model_type == "qwen3"

    # -- Hugging Face config.json -------------------------------------------------------
    def to_hf(self) -> dict[str, Any]:
        """The ``config.json`` a Hugging Face ``AutoModelForCausalLM`` of ``model_type`` reads."""
        data = {k: v for k, v in asdict(self).items() if k not in ("rope_theta", "fp8")}
        data.update(architectures=FAMILIES[self.model_type]["architectures"], hidden_act="silu",
                    rope_theta=self.rope_theta,
                    rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta})
        if self.model_type == "qwen2":
            data.pop("attention_bias")  # Qwen2 always has q/k/v bias; its config has no such field
        return data

    @classmethod
    def from_hf(cls, data: dict[str, Any], *, where: str = "config.json") -> "ModelConfig":
        """Read a Llama / Qwen2 / Qwen3 ``config.json``; anything we cannot reproduce is an error."""
        model_type = data.get("model_type")
        if model_type not in FAMILIES:
            raise ValueError(f"{where}: model_type {model_type!r} is not supported; "
                             f"supported: {sorted(FAMILIES)}")
        act = data.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"{where}: hidden_act {act!r} is not supported (only 'silu')")
        rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"{where}: rope type {rope_type!r} is not supported (only 'default')")
        if data.get("use_sliding_window"):
            raise ValueError(f"{where}: sliding-window attention is not supported")
        if data.get("mlp_bias"):
            raise ValueError(f"{where}: mlp_bias is not supported")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["rope_theta"] = float(rope.get("rope_theta", data.get("rope_theta", 10000.0)))
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if isinstance(kwargs.get(key), list):  # some checkpoints list several EOS ids
                kwargs[key] = kwargs[key][0]
        return cls(**kwargs)

    def save(self, directory: str | Path) -> None:
        Path(directory, "config.json").write_text(json.dumps(self.to_hf(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "ModelConfig":
        path = Path(directory, "config.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no config.json in the model directory") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_hf(data, where=str(path))
