"""A DeepSeek-V3-style Mixture-of-Experts feed-forward: shared experts plus top-k routed experts.

Each token goes through the shared SwiGLU (if any) and through the k routed SwiGLU experts its
router picks, weighted by their gate values. Balance between experts is kept without an auxiliary
loss: a per-expert bias is added to the scores when *choosing* experts (never when weighting
them) and is nudged after each optimizer step, up for underloaded experts and down for
overloaded ones (``balance_experts``). A sequence-level auxiliary loss is available on top
(``aux_loss_alpha``).

Routing replay (R3): the experts chosen while sampling are recorded per token and layer
(``DecoderLM.last_routing``) and fed back to the training forward pass (``routing=``), where the
gate weights are recomputed from the current router at those experts, so gradients still reach
the router but the training pass runs the network the sample came from. A replayed index of -1
means "route afresh" (positions the sampler never fed through the model).

``shard_experts`` spreads the routed experts over a process group (expert parallelism, see
``expert_parallel.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .decoder import SwiGLU
from .expert_parallel import owned_experts, routed_parallel


class Router(nn.Module):
    """Scores experts for each token and picks the top k; ``e_score_correction_bias`` (DeepSeek-V3's
    name, so their checkpoints load) steers the choice only."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size).normal_(std=0.02))
        self.register_buffer("e_score_correction_bias", torch.zeros(config.num_experts))

    def forward(self, x: torch.Tensor, replay: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For tokens ``x`` [N, H]: gate weights [N, k], experts used [N, k], scores [N, E], and the
        experts the router would pick itself [N, k] (differs from those used only under replay)."""
        c = self.config
        logits = F.linear(x.float(), self.weight.float())
        scores = logits.softmax(-1) if c.scoring_func == "softmax" else logits.sigmoid()
        fresh = self._limit_groups(scores.detach() + self.e_score_correction_bias.float()).topk(
            c.num_experts_per_tok, dim=-1).indices
        chosen = fresh if replay is None else torch.where(replay >= 0, replay.long(), fresh)
        weights = scores.gather(-1, chosen)
        if c.norm_topk_prob:
            weights = weights / weights.sum(-1, keepdim=True)
        return weights * c.routed_scaling_factor, chosen, scores, fresh

    def _limit_groups(self, choice: torch.Tensor) -> torch.Tensor:
        """Group-limited routing (DeepSeek-V3): only experts of the ``topk_group`` groups whose two
        best (biased) scores sum highest stay eligible, so a token's experts sit on few devices."""
        c = self.config
        if c.n_group == 1:
            return choice
        groups = choice.view(len(choice), c.n_group, c.num_experts // c.n_group)  # -1 is ambiguous for 0 tokens
        best = groups.topk(2, dim=-1).values.sum(-1).topk(c.topk_group, dim=-1).indices
        eligible = torch.zeros_like(groups[..., 0], dtype=torch.bool).scatter(1, best, True)
        return groups.masked_fill(~eligible[..., None], float("-inf")).flatten(1)


class MoE(nn.Module):
    """``forward(x [B, T, H], keep [B, T] real-token mask, replay [B, T, k] or None) -> [B, T, H]``.

    In training mode it also accumulates the expert load and the replay disagreement for
    ``balance_experts`` and leaves the sequence-level auxiliary loss in ``aux_loss``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        size = config.moe_intermediate_size
        self.gate = Router(config)
        self.experts = nn.ModuleList(SwiGLU(config, size) for _ in range(config.num_experts))
        self.shared_experts = SwiGLU(config, size * config.n_shared_experts) if config.n_shared_experts else None
        self.expert_group: dist.ProcessGroup | None = None  # set by shard_experts
        self.last_indices: torch.Tensor | None = None  # [B, T, k] experts used by the last forward
        self.aux_loss: torch.Tensor | None = None
        self.reset_stats()

    def reset_stats(self) -> None:
        """Counters since the last ``balance_experts``; tensors on the model's device, so
        accumulating them never waits for the device."""
        self.load = torch.zeros(self.config.num_experts, dtype=torch.long)
        self.replayed_tokens = torch.zeros((), dtype=torch.long)
        self.replay_changed = torch.zeros((), dtype=torch.long)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None,
                replay: torch.Tensor | None = None) -> torch.Tensor:
        b, t, h = x.shape
        k = self.config.num_experts_per_tok
        flat = x.reshape(-1, h)
        weights, chosen, scores, fresh = self.gate(flat, None if replay is None else replay.reshape(-1, k))
        if self.expert_group is not None:
            out = routed_parallel(flat, weights, chosen, self.experts, self.expert_group)
        else:
            out = self._routed(flat, weights, chosen)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)
        self.last_indices = chosen.view(b, t, k)
        self.aux_loss = None
        if self.training and torch.is_grad_enabled():  # a training pass, not a no-grad recomputation
            keep = torch.ones(b, t, dtype=torch.bool, device=x.device) if keep is None else keep.bool()
            self._observe(chosen, fresh, keep.reshape(-1), replay)
            if self.config.aux_loss_alpha > 0:
                self.aux_loss = self.config.aux_loss_alpha * sequence_balance_loss(
                    scores.view(b, t, self.config.num_experts), chosen.view(b, t, k), keep)
        return out.view(b, t, h)

    def _routed(self, x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for expert, count in enumerate(torch.bincount(chosen.flatten(), minlength=len(self.experts)).tolist()):
            if count:
                token, slot = torch.where(chosen == expert)
                out = out.index_add(0, token, self.experts[expert](x[token]) * weights[token, slot, None].to(x.dtype))
        return out

    @torch.no_grad()
    def _observe(self, chosen: torch.Tensor, fresh: torch.Tensor, keep: torch.Tensor,
                 replay: torch.Tensor | None) -> None:
        self.load = self.load.to(chosen.device) + torch.bincount(chosen[keep].flatten(),
                                                                 minlength=self.config.num_experts)
        if replay is not None:
            replayed = keep & (replay.reshape(len(keep), -1)[:, 0] >= 0)
            changed = (chosen.sort(-1).values != fresh.sort(-1).values).any(-1)
            self.replayed_tokens = self.replayed_tokens.to(chosen.device) + replayed.sum()
            self.replay_changed = self.replay_changed.to(chosen.device) + (changed & replayed).sum()


def sequence_balance_loss(scores: torch.Tensor, chosen: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss (without alpha), averaged over sequences:
    sum_i f_i * P_i with f_i = E / (k T) * (tokens routed to i) and P_i the mean normalised score of
    expert i over the sequence's T real tokens. Equals 1 when routing is perfectly uniform."""
    n_experts, k = scores.shape[-1], chosen.shape[-1]
    mask = keep.unsqueeze(-1).to(scores.dtype)  # [B, T, 1]
    tokens = mask.sum(1).clamp(min=1)  # [B, 1]
    picked = F.one_hot(chosen, n_experts).sum(2).to(scores.dtype)  # [B, T, E]
    f = (picked * mask).sum(1) * n_experts / (k * tokens)
    p = (scores / scores.sum(-1, keepdim=True) * mask).sum(1) / tokens
    return (f * p).sum(-1).mean()


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def shard_experts(model: nn.Module, group: dist.ProcessGroup | None = None) -> range:
    """Keep on this rank only its share of every MoE layer's routed experts (the others become
    None) and route through ``group`` from now on; returns the experts kept. Call it on every rank
    after loading the full model; every later forward pass is then collective."""
    kept = range(0)
    for layer in moe_layers(model):
        kept = owned_experts(len(layer.experts), group)
        for expert in range(len(layer.experts)):
            if expert not in kept:
                layer.experts[expert] = None
        layer.expert_group = group if group is not None else dist.group.WORLD
    return kept


def sharded_prefixes(model: nn.Module) -> list[str]:
    """State-dict prefixes (``model.layers.3.mlp.experts.5.``) of the routed experts this rank holds
    as its share under expert parallelism; empty when it holds every expert."""
    return [f"{name}.experts.{index}." for name, layer in model.named_modules()
            if isinstance(layer, MoE) and layer.expert_group is not None
            for index, expert in enumerate(layer.experts) if expert is not None]


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(replicated, sharded): the parameters every rank holds, and this rank's share of the routed
    experts (empty without expert parallelism). Their gradients are reduced differently."""
    prefixes = tuple(sharded_prefixes(model))
    replicated, sharded = [], []
    for name, parameter in model.named_parameters():
        (sharded if prefixes and name.startswith(prefixes) else replicated).append(parameter)
    return replicated, sharded


def aux_loss(model: nn.Module) -> torch.Tensor | float:
    """The summed auxiliary balance loss of the last training forward pass (0 when off)."""
    return sum((m.aux_loss for m in moe_layers(model) if m.aux_loss is not None), 0.0)


@torch.no_grad()
def balance_experts(model: nn.Module, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any]:
    """Call after each optimizer step: move every layer's bias by ``bias_update_speed`` toward
    balance (b_i += gamma * sign(mean load - load_i), from the tokens routed in training passes
    since the last call) and return that load: per-layer fractions, max/mean imbalance, and the
    fraction of replayed tokens whose experts the router would have chosen differently.
    ``reduce`` sums the counters over data-parallel ranks, so every rank sees the global load and
    keeps the same bias. Empty for a dense model."""
    layers = moe_layers(model)
    if not layers:
        return {}
    # [layers, experts + 2] on the CPU; once per optimizer step, so the device sync is cheap
    counts = torch.stack([torch.cat([layer.load.cpu(), layer.replayed_tokens.cpu()[None],
                                     layer.replay_changed.cpu()[None]]) for layer in layers]).double()
    counts = reduce(counts) if reduce is not None else counts
    fractions, imbalance = [], []
    for layer, row in zip(layers, counts):
        load = row[:-2]
        if load.sum() > 0:
            step = layer.config.bias_update_speed * torch.sign(load.mean() - load)
            layer.gate.e_score_correction_bias += step.to(layer.gate.e_score_correction_bias)
            fractions.append((load / load.sum()).tolist())
            imbalance.append(float(load.max() / load.mean()))
        layer.reset_stats()
    stats: dict[str, Any] = {}
    if imbalance:
        stats.update(moe_load=fractions, moe_imbalance=float(np.mean(imbalance)), moe_imbalance_max=max(imbalance))
    replayed, changed = counts[:, -2].sum().item(), counts[:, -1].sum().item()
    if replayed:
        stats["moe_replay_changed"] = changed / replayed
    return stats


def mean_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Key-wise mean of ``balance_experts`` results over several optimizer steps."""
    keys = {key for row in rows for key in row}
    return {key: np.mean([row[key] for row in rows if key in row], axis=0).tolist() for key in sorted(keys)}


def unfuse_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-expert tensors from the fused layout (``experts.gate_up_proj`` [E, 2I, H] with the gate
    rows first, ``experts.down_proj`` [E, H, I]) that transformers 5 keeps in memory and some
    checkpoints store; other tensors pass through."""
    out = {}
    for name, tensor in state.items():
        prefix, _, leaf = name.rpartition(".experts.")
        if leaf not in ("gate_up_proj", "down_proj") or tensor.dim() != 3:
            out[name] = tensor
            continue
        parts = {leaf: tensor}
        if leaf == "gate_up_proj":
            parts = dict(zip(("gate_proj", "up_proj"), tensor.chunk(2, dim=1)))
        for proj, stacked in parts.items():
            for expert, weight in enumerate(stacked):
                out[f"{prefix}.experts.{expert}.{proj}.weight"] = weight.contiguous()
    return out
