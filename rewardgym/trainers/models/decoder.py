"""A compact decoder-only transformer in plain torch: RMSNorm, RoPE, grouped-query attention,
SwiGLU MLP, and a KV cache for generation.

Module and parameter names follow Hugging Face's Llama/Qwen layout (``model.layers.0.self_attn
.q_proj.weight`` ...), so their checkpoints load with ``load_state_dict`` and ours load in
``transformers``. Two seams for later work: every projection is built by ``make_linear`` (the place
an FP8 linear goes), and every block's feed-forward by ``make_mlp`` (the place a Mixture-of-Experts
goes).

Batches may be left-padded: ``attention_mask`` (1 = real token) hides padding keys and positions
count only real tokens, which is what makes batched generation agree with one-by-one generation.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .fp8 import FP8Linear


def make_linear(in_features: int, out_features: int, *, bias: bool, config: ModelConfig) -> nn.Module:
    """Every projection in the model is built here (the FP8 seam)."""
    if config.fp8:
        return FP8Linear(in_features, out_features, bias=bias)
    return nn.Linear(in_features, out_features, bias=bias)


def make_mlp(config: ModelConfig, layer: int) -> nn.Module:
    """Every block's feed-forward is built here (the Mixture-of-Experts seam)."""
    if config.is_moe_layer(layer):
        from .moe import MoE  # moe.py builds its experts from SwiGLU below

        return MoE(config)
    return SwiGLU(config)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:  # one kernel; the same arithmetic as below
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # normalised in float32, scaled in the input dtype, as transformers does (logit parity)
        return self.weight * F.rms_norm(x.float(), self.weight.shape, eps=self.eps).to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig, intermediate_size: int | None = None):
        super().__init__()
        h, i = config.hidden_size, intermediate_size or config.intermediate_size
        self.gate_proj = make_linear(h, i, bias=False, config=config)
        self.up_proj = make_linear(h, i, bias=False, config=config)
        self.down_proj = make_linear(i, h, bias=False, config=config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


@lru_cache(maxsize=16)
def _rope_constants(head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse frequencies [head_dim / 2], and the signs [head_dim] that turn a roll of the two
    halves into the rotation (-x2, x1); both fixed per model, so built once."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    signs = torch.ones(head_dim, device=device)
    signs[:head_dim // 2] = -1.0
    return inv_freq, signs


def rope_tables(config: ModelConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin for ``positions`` [B, T], shaped [B, 1, T, head_dim] (half-rotation layout;
    the sin of the first half is negated, see ``apply_rope``)."""
    return rope_from(*_rope_constants(config.head_dim, config.rope_theta, positions.device), positions)


def rope_from(inv_freq: torch.Tensor, signs: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``rope_tables`` from its constants (a compiled step takes them as inputs, not from a cache)."""
    angles = positions.float()[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin() * signs


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = (-x2, x1) = roll(x) * signs: three
    tensor ops instead of nine, which is what a small model's decode step is made of."""
    x32 = x.float()
    return torch.addcmul(x32 * cos, x32.roll(x.shape[-1] // 2, -1), signed_sin).to(x.dtype)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to ``capacity``."""

    def __init__(self, config: ModelConfig, batch: int, capacity: int, *, dtype: torch.dtype, device: torch.device):
        shape = (batch, config.num_key_value_heads, capacity, config.head_dim)
        self.config = config
        key_shape, value_shape = shape, shape
        if config.mla:  # latent attention caches its latent and its shared rotary key (mla.py)
            key_shape, value_shape = (batch, 1, capacity, config.kv_lora_rank), (batch, 1, capacity, config.head_dim)
        self.keys = [torch.zeros(key_shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(value_shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.length = 0  # tokens stored (the same for every layer once a forward pass ends)
        self.capacity = capacity

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KVCache: {end} tokens exceed the capacity {self.capacity}")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def gather(self, rows: torch.Tensor, capacity: int) -> "KVCache":
        """A cache holding this one's tokens for ``rows`` (repeats allowed), with room for ``capacity``
        tokens. Differentiable, so rows that continue the same prompt can share one forward pass of
        it, in training as in sampling."""
        first = self.keys[0]
        out = KVCache(self.config, len(rows), capacity, dtype=first.dtype, device=first.device)
        if self.length > capacity:
            raise ValueError(f"KVCache.gather: {self.length} tokens exceed the capacity {capacity}")
        for mine, theirs in ((self.keys, out.keys), (self.values, out.values)):
            for layer, tensor in enumerate(mine):
                theirs[layer][:, :, :self.length] = tensor[rows, :, :self.length]
        out.length = self.length
        return out


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        h, d = config.hidden_size, config.head_dim
        qkv_bias = config.attention_bias
        out_bias = config.attention_bias and config.model_type != "qwen2"
        self.q_proj = make_linear(h, config.num_attention_heads * d, bias=qkv_bias, config=config)
        self.k_proj = make_linear(h, config.num_key_value_heads * d, bias=qkv_bias, config=config)
        self.v_proj = make_linear(h, config.num_key_value_heads * d, bias=qkv_bias, config=config)
        self.o_proj = make_linear(config.num_attention_heads * d, h, bias=out_bias, config=config)
        if config.qk_norm:
            self.q_norm = RMSNorm(d, config.rms_norm_eps)
            self.k_norm = RMSNorm(d, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor,
                cache: KVCache | None) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.config
        q = self.q_proj(x).view(b, t, c.num_attention_heads, c.head_dim)
        k = self.k_proj(x).view(b, t, c.num_key_value_heads, c.head_dim)
        v = self.v_proj(x).view(b, t, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q.transpose(1, 2), *rope), apply_rope(k.transpose(1, 2), *rope)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if t == 1:
            # A decode step: the query heads that share a key/value head are that head's queries, so
            # scores, mask (an additive bias [B * kv, G, keys], see DecoderLM.forward) and scale take
            # one batched product and nothing repeats the keys: ~20% cheaper than the fused kernel.
            kv, keys = c.num_key_value_heads, k.shape[2]
            scores = torch.baddbmm(mask, q.reshape(b * kv, -1, c.head_dim),
                                   k.reshape(b * kv, keys, c.head_dim).transpose(1, 2), alpha=c.head_dim ** -0.5)
            out = torch.bmm(scores.float().softmax(-1).to(v.dtype), v.reshape(b * kv, keys, c.head_dim))
            return self.o_proj(out.view(b, 1, -1))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             enable_gqa=c.num_attention_heads != c.num_key_value_heads)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        if config.mla:
            from .mla import LatentAttention  # mla.py builds on this module's layers

            self.self_attn = LatentAttention(config, layer)
        else:
            self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.sparse = config.is_moe_layer(layer)
        self.mlp = make_mlp(config, layer)

    def forward(self, x, rope, mask, cache, keep=None, replay=None):
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, cache)
        h = self.post_attention_layernorm(x)
        return x + (self.mlp(h, keep, replay) if self.sparse else self.mlp(h))


class Backbone(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DecoderLM(nn.Module):
    """Causal language model. ``forward(input_ids, attention_mask, cache) -> logits [B, T, V]``.

    With a cache, ``attention_mask`` covers every token so far (cached plus new), as in
    Hugging Face; positions are the running count of real tokens. A Mixture-of-Experts model takes
    ``routing`` [B, T, MoE layers, k], experts to replay (see ``moe.py``), and reports the experts
    it used through ``last_routing()``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, batch, capacity, dtype=p.dtype, device=p.device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, *, routing: torch.Tensor | None = None) -> torch.Tensor:
        b, t = input_ids.shape
        past = cache.length if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past + t, dtype=torch.long, device=input_ids.device)
        if attention_mask.shape != (b, past + t):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(b, past + t)}")
        keep = attention_mask.bool()
        if t == 1 and not self.config.mla:
            # One new token (a decode step): no causal matrix, the query sees every real key, and
            # a padding query sees itself so softmax stays finite (its output is unused).
            positions = (attention_mask.sum(-1, keepdim=True) - 1).clamp(min=0)
            c = self.config
            bias = torch.zeros((b, 1, 1, past + t), dtype=self.lm_head.weight.dtype, device=input_ids.device)
            bias.masked_fill_(~keep[:, None, None, :], float("-inf"))[..., -1] = 0.0
            mask = bias.expand(b, c.num_key_value_heads, c.num_attention_heads // c.num_key_value_heads,
                               past + t).reshape(b * c.num_key_value_heads, -1, past + t)
        else:
            positions = (keep.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            causal = torch.ones(t, past + t, dtype=torch.bool, device=input_ids.device).tril(past)
            mask = causal[None] & keep[:, None, :]
            # A query on padding sees no key; let it see itself so softmax stays finite (output unused).
            steps = torch.arange(past + t, device=input_ids.device)
            mask = mask | (steps[past:, None] == steps[None, :])[None]
            mask = mask[:, None]
        rope = rope_tables(self.config, positions)
        replays = iter(self._check_routing(routing, b, t).unbind(2)) if routing is not None else None
        x = self.model.embed_tokens(input_ids)
        for block in self.model.layers:
            replay = next(replays) if replays is not None and block.sparse else None
            x = block(x, rope, mask, cache, keep[:, past:], replay)
        if cache is not None:
            cache.length += t
        return self.lm_head(self.model.norm(x))

    def _check_routing(self, routing: torch.Tensor, b: int, t: int) -> torch.Tensor:
        expected = (b, t, sum(block.sparse for block in self.model.layers), self.config.num_experts_per_tok)
        if tuple(routing.shape) != expected:
            raise ValueError(f"routing has shape {tuple(routing.shape)}, expected {expected} "
                             "(batch, tokens, MoE layers, experts per token)")
        return routing.to(self.lm_head.weight.device)  # rollouts may keep it elsewhere

    def last_routing(self) -> torch.Tensor | None:
        """Experts each token went to in the last forward pass, [B, T, MoE layers, k]; None if dense."""
        used = [block.mlp.last_indices for block in self.model.layers if block.sparse]
        return torch.stack(used, dim=2) if used else None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())
