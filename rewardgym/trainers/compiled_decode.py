"""A decode step for ``torch.compile``: one new token per row through a dense decoder, with every
shape fixed per (batch, cache capacity), so it compiles once and then runs as a few fused kernels
instead of ~130 small ops (a small model's decode step is nearly all per-op dispatch).
The same step compiles for a CUDA model (Triton kernels).

Fixed shapes mean attention runs over the whole preallocated cache under a key mask (columns not
yet written are masked out), and the write position is a tensor, not a Python int. Inductor's C++
wrapper is used on the CPU: its Python wrapper alone costs ~10% of this step there; on a GPU the
default Python wrapper is kept (the C++ one compiles much more there and was not measured).
"""

from __future__ import annotations

from functools import cache

import torch

from .models import DecoderLM, KVCache
from .models.decoder import _rope_constants, apply_rope, rope_from

CAPACITY_STEP = 64  # caches are sized in multiples of this, so prompt widths share compiled steps


def check_compilable(model: DecoderLM) -> None:
    """Refuse models whose decode step this module does not implement."""
    c = model.config
    if c.num_experts or c.mla or c.fp8:
        raise ValueError("compile=true supports dense models only (no Mixture-of-Experts, latent attention or FP8)")


def padded_capacity(tokens: int) -> int:
    """The cache capacity for ``tokens``: rounded up so few distinct shapes reach the compiler."""
    return -(-tokens // CAPACITY_STEP) * CAPACITY_STEP


def decode_step(model: DecoderLM, token: torch.Tensor, keep: torch.Tensor, index: torch.Tensor,
                keys: list[torch.Tensor], values: list[torch.Tensor], inv_freq: torch.Tensor,
                signs: torch.Tensor) -> torch.Tensor:
    """Logits [B, V] for ``token`` [B, 1] written at cache column ``index`` (a 1-element long
    tensor). ``keep`` [B, capacity] marks the real tokens (the new one included); the new column is
    always visible to its own query, so a finished row's softmax stays finite (as in eager)."""
    c = model.config
    b = token.shape[0]
    kv, group, d = c.num_key_value_heads, c.num_attention_heads // c.num_key_value_heads, c.head_dim
    capacity = keep.shape[1]
    positions = (keep.sum(-1, keepdim=True) - 1).clamp(min=0)
    visible = keep.bool() | (torch.arange(capacity, device=keep.device) == index)
    bias = torch.zeros((b, capacity), dtype=model.lm_head.weight.dtype, device=keep.device)
    bias = bias.masked_fill(~visible, float("-inf"))
    bias = bias[:, None, None, :].expand(b, kv, group, capacity).reshape(b * kv, group, capacity)
    cos, sin = rope_from(inv_freq, signs, positions)
    x = model.model.embed_tokens(token)
    for layer, block in enumerate(model.model.layers):
        attn = block.self_attn
        h = block.input_layernorm(x)
        q = attn.q_proj(h).view(b, 1, c.num_attention_heads, d)
        k = attn.k_proj(h).view(b, 1, kv, d)
        v = attn.v_proj(h).view(b, 1, kv, d).transpose(1, 2)
        if c.qk_norm:
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = apply_rope(q.transpose(1, 2), cos, sin), apply_rope(k.transpose(1, 2), cos, sin)
        keys[layer].index_copy_(2, index, k)
        values[layer].index_copy_(2, index, v)
        scores = torch.baddbmm(bias, q.reshape(b * kv, group, d),
                               keys[layer].reshape(b * kv, capacity, d).transpose(1, 2), alpha=d ** -0.5)
        out = torch.bmm(scores.float().softmax(-1).to(v.dtype), values[layer].reshape(b * kv, capacity, d))
        x = x + attn.o_proj(out.view(b, 1, -1))
        x = x + block.mlp(block.post_attention_layernorm(x))
    return model.lm_head(model.model.norm(x))[:, -1]


@cache
def _compiled(cpp_wrapper: bool):
    """Compiled on first use, so importing this module never needs a compiler."""
    return torch.compile(decode_step, dynamic=False, fullgraph=True, options={"cpp_wrapper": cpp_wrapper})


class CompiledDecoder:
    """Runs ``sample``'s decode steps through the compiled step; holds the full-width mask."""

    def __init__(self, model: DecoderLM, cache: KVCache, attention_mask: torch.Tensor):
        check_compilable(model)
        self.model, self.cache = model, cache
        self.keep = attention_mask.new_zeros((attention_mask.shape[0], cache.capacity))
        self.keep[:, :attention_mask.shape[1]] = attention_mask
        c = model.config
        self.rope = _rope_constants(c.head_dim, c.rope_theta, attention_mask.device)

    def __call__(self, token: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] after feeding ``token`` [B]; ``live`` [B, 1] is its attention-mask column."""
        index = self.cache.length
        if index >= self.cache.capacity:
            raise ValueError(f"KVCache: {index + 1} tokens exceed the capacity {self.cache.capacity}")
        self.keep[:, index] = live[:, 0]
        step = _compiled(self.keep.device.type == "cpu")
        logits = step(self.model, token[:, None], self.keep, torch.tensor([index], device=self.keep.device),
                      self.cache.keys, self.cache.values, *self.rope)
        self.cache.length += 1
        return logits
