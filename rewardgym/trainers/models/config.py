"""ModelConfig: the hyperparameters of the decoder, and their Hugging Face ``config.json`` form.

The field names are Hugging Face's, so a Llama, Qwen2, Qwen3, Qwen3-MoE or DeepSeek-V3
``config.json`` maps onto this dataclass with few translations, and ours is written back as one of those model types (so
``transformers`` can load what we save).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

#: model_type -> the flags that differ between the families we read and write.
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"architectures": ["LlamaForCausalLM"]},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"]},  # q/k/v projections always carry a bias
    "qwen3": {"architectures": ["Qwen3ForCausalLM"]},  # RMSNorm on each head's queries and keys
    "qwen3_moe": {"architectures": ["Qwen3MoeForCausalLM"]},  # Qwen3 attention, softmax-routed experts
    "deepseek_v3": {"architectures": ["DeepseekV3ForCausalLM"]},  # MLA attention, sigmoid-routed experts
}
#: The Mixture-of-Experts fields: left out of a dense model's config.json.
MOE_FIELDS = ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts", "scoring_func",
              "norm_topk_prob", "routed_scaling_factor", "first_k_dense_replace", "decoder_sparse_step",
              "mlp_only_layers", "bias_update_speed", "aux_loss_alpha", "n_group", "topk_group")
#: Multi-head latent attention (DeepSeek-V3): only in a deepseek_v3 config.json.
MLA_FIELDS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "rope_interleave")


@dataclass
class ModelConfig:
    """A decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP or (``num_experts`` > 0) a
    DeepSeek-V3-style Mixture-of-Experts (see ``moe.py``)."""

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
    # Mixture-of-Experts (DeepSeek-V3 / Qwen3-MoE names); num_experts 0 = dense
    num_experts: int = 0  # routed experts per MoE layer
    num_experts_per_tok: int = 2  # top-k
    moe_intermediate_size: int | None = None  # each expert's SwiGLU width (default intermediate_size)
    n_shared_experts: int = 0  # always-on experts, fused into one SwiGLU of n times the width
    scoring_func: str = "softmax"  # or "sigmoid" (DeepSeek-V3)
    norm_topk_prob: bool = True  # rescale the chosen k gate weights to sum to 1
    routed_scaling_factor: float = 1.0
    first_k_dense_replace: int = 0  # the first k layers keep a dense MLP (DeepSeek)
    decoder_sparse_step: int = 1  # layer i is MoE when (i + 1) % step == 0 (Qwen3-MoE)
    mlp_only_layers: list[int] = field(default_factory=list)  # dense layers (Qwen3-MoE)
    bias_update_speed: float = 0.001  # gamma of auxiliary-loss-free balancing; 0 freezes the bias
    aux_loss_alpha: float = 0.0  # weight of the sequence-level balance loss; 0 = none
    n_group: int = 1  # group-limited routing: experts in n groups, tokens pick among topk_group of them
    topk_group: int = 1
    # multi-head latent attention, model_type deepseek_v3 only
    q_lora_rank: int | None = None  # None: queries by one projection, not a low-rank pair
    kv_lora_rank: int = 32
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16
    rope_interleave: bool = True

    def __post_init__(self) -> None:
        if self.mla:
            self.head_dim = self.qk_rope_head_dim  # the rotary part is what RoPE tables cover
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
        if self.moe_intermediate_size is None:
            self.moe_intermediate_size = self.intermediate_size
        problems += self._moe_problems()
        if problems:
            raise ValueError("ModelConfig: " + "; ".join(problems))
        if self.model_type == "qwen2":
            self.attention_bias = True

    def _moe_problems(self) -> list[str]:
        if self.num_experts < 0 or self.n_shared_experts < 0 or self.decoder_sparse_step < 1:
            return ["num_experts and n_shared_experts must be >= 0 and decoder_sparse_step >= 1"]
        if not self.num_experts:
            return []
        problems = []
        if not 1 <= self.num_experts_per_tok <= self.num_experts:
            problems.append(f"num_experts_per_tok ({self.num_experts_per_tok}) must be in 1..num_experts "
                            f"({self.num_experts})")
        if self.scoring_func not in ("softmax", "sigmoid"):
            problems.append(f"scoring_func {self.scoring_func!r} not one of ['sigmoid', 'softmax']")
        if self.n_group < 1 or self.num_experts % self.n_group or not 1 <= self.topk_group <= self.n_group:
            problems.append(f"n_group ({self.n_group}) must divide num_experts ({self.num_experts}) and "
                            f"topk_group ({self.topk_group}) be in 1..n_group")
        elif self.n_group > 1 and (self.num_experts // self.n_group < 2
                                   or self.topk_group * self.num_experts // self.n_group < self.num_experts_per_tok):
            problems.append("group-limited routing needs >= 2 experts per group and >= num_experts_per_tok "
                            "experts in the topk_group groups")
        if self.model_type == "deepseek_v3" and self.scoring_func != "sigmoid":
            problems.append("deepseek_v3 routes with sigmoid scores (scoring_func 'sigmoid')")
        if self.model_type == "qwen3_moe" and (self.n_shared_experts or self.scoring_func != "softmax"
                                               or self.routed_scaling_factor != 1 or self.first_k_dense_replace):
            problems.append("qwen3_moe has softmax gating, no shared experts, no routed scaling and no "
                            "first_k_dense_replace; use model_type llama or qwen3 for a DeepSeek-style MoE")
        return problems

    def is_moe_layer(self, layer: int) -> bool:
        """Whether block ``layer`` has experts (DeepSeek's dense first layers, Qwen3-MoE's sparse step)."""
        return (self.num_experts > 0 and layer >= self.first_k_dense_replace and layer not in self.mlp_only_layers
                and (layer + 1) % self.decoder_sparse_step == 0)

    @property
    def mla(self) -> bool:
        """DeepSeek-V3 attends through a compressed key-value latent (multi-head latent attention)."""
        return self.model_type == "deepseek_v3"

    @property
    def qk_norm(self) -> bool:
        """Qwen3 normalises each head's queries and keys before RoPE."""
        return self.model_type in ("qwen3", "qwen3_moe")

    # -- Hugging Face config.json -------------------------------------------------------
    def to_hf(self) -> dict[str, Any]:
        """The ``config.json`` a Hugging Face ``AutoModelForCausalLM`` of ``model_type`` reads."""
        data = {k: v for k, v in asdict(self).items() if k not in ("rope_theta", "fp8")}
        data.update(architectures=FAMILIES[self.model_type]["architectures"], hidden_act="silu",
                    rope_theta=self.rope_theta,
                    rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta})
        if self.model_type == "qwen2":
            data.pop("attention_bias")  # Qwen2 always has q/k/v bias; its config has no such field
        for key in (MOE_FIELDS if not self.num_experts else ()) + (MLA_FIELDS if not self.mla else ()):
            data.pop(key)
        if self.model_type == "deepseek_v3" and self.num_experts:
            data["n_routed_experts"] = data.pop("num_experts")  # transformers' name in this family
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
        for alias in ("num_local_experts", "n_routed_experts"):  # transformers 5 / DeepSeek spellings
            if alias in data:
                kwargs.setdefault("num_experts", data[alias])
        if model_type == "qwen3_moe":
            kwargs.setdefault("norm_topk_prob", False)  # transformers' default for this family
        if model_type == "deepseek_v3":
            kwargs.setdefault("scoring_func", "sigmoid")
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
