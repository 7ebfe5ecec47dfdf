"""Multi-head latent attention (DeepSeek-V2/V3), for ``model_type: deepseek_v3`` checkpoints.

Keys and values come from one low-rank latent per token (``kv_a_proj_with_mqa`` -> RMSNorm ->
``kv_b_proj``) plus a small rotary key shared by all heads; queries from an optional low-rank pair
(``q_a_proj`` -> RMSNorm -> ``q_b_proj``). Each head's query and key are a position-free part and
a rotary part. The KV cache stores the latent and the rotary key, which is what makes MLA's cache
small; keys and values are expanded from it at every step (the plain, unabsorbed form).
Parameter names are transformers' ``DeepseekV3Attention``'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .decoder import KVCache, RMSNorm, apply_rope, make_linear


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on dimension pairs (0, 1), (2, 3)...; the result lists the pairs' first halves, then
    their second halves (the same for queries and keys, so their products are unchanged). ``sin``
    is ``rope_tables``' signed sine, whose second half is the plain sine of each pair's angle."""
    half = x.shape[-1] // 2
    cos, sin = cos[..., :half], sin[..., half:]
    even, odd = x[..., 0::2].float(), x[..., 1::2].float()
    return torch.cat([even * cos - odd * sin, odd * cos + even * sin], dim=-1).to(x.dtype)


class LatentAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        c, h = config, config.hidden_size
        heads, qk_dim = c.num_attention_heads, c.qk_nope_head_dim + c.qk_rope_head_dim
        if c.q_lora_rank is None:
            self.q_proj = make_linear(h, heads * qk_dim, bias=False, config=c)
        else:
            self.q_a_proj = make_linear(h, c.q_lora_rank, bias=c.attention_bias, config=c)
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
            self.q_b_proj = make_linear(c.q_lora_rank, heads * qk_dim, bias=False, config=c)
        self.kv_a_proj_with_mqa = make_linear(h, c.kv_lora_rank + c.qk_rope_head_dim, bias=c.attention_bias, config=c)
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, c.rms_norm_eps)
        self.kv_b_proj = make_linear(c.kv_lora_rank, heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False, config=c)
        self.o_proj = make_linear(heads * c.v_head_dim, h, bias=c.attention_bias, config=c)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor,
                cache: KVCache | None) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.config
        heads, nope, rot = c.num_attention_heads, c.qk_nope_head_dim, c.qk_rope_head_dim
        q = self.q_proj(x) if c.q_lora_rank is None else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q_nope, q_rot = q.view(b, t, heads, nope + rot).transpose(1, 2).split([nope, rot], dim=-1)
        latent, k_rot = self.kv_a_proj_with_mqa(x).split([c.kv_lora_rank, rot], dim=-1)
        latent, k_rot = self.kv_a_layernorm(latent)[:, None], k_rot[:, None]  # one "head" each
        rotate = apply_rope_interleaved if c.rope_interleave else apply_rope
        q_rot, k_rot = rotate(q_rot, *rope), rotate(k_rot, *rope)
        if cache is not None:
            latent, k_rot = cache.update(self.layer, latent, k_rot)
        kv = self.kv_b_proj(latent[:, 0]).view(b, -1, heads, nope + c.v_head_dim).transpose(1, 2)
        k_nope, v = kv.split([nope, c.v_head_dim], dim=-1)
        k = torch.cat([k_nope, k_rot.expand(-1, heads, -1, -1)], dim=-1)
        out = F.scaled_dot_product_attention(torch.cat([q_nope, q_rot], dim=-1), k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
