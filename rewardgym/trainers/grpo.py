"""GRPO's math as pure functions: advantages, the clipped policy loss, KL, and the later fixes.

References, each an option here:
  GRPO (DeepSeekMath, Shao et al. 2024): group-normalised advantages, clipped ratio, k3 KL,
    per-sequence mean of token losses.
  Dr. GRPO (Liu et al. 2025): no division by the group std; sum of token losses over a constant
    length instead of each sequence's own length.
  DAPO (Yu et al. 2025): clip-higher (eps_high > eps_low), token-level mean over the batch,
    dynamic sampling (drop groups whose rewards are all equal), soft overlong punishment.
  GSPO (Zheng et al. 2025): one importance ratio per sequence, the geometric mean of token ratios.
  TIS (Yao et al. 2025): when the sampler computes log-probs differently from the trainer (FP8
    rollouts), each token's loss is weighted by min(pi_train_old / pi_sampler, C).
Tensors: ``logp``, ``old_logp``, ``ref_logp`` and ``mask`` are [B, T]; ``advantages`` is [B].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

AGGREGATIONS = ("token_mean", "seq_mean", "seq_sum_norm")
RATIO_LEVELS = ("token", "sequence")


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale_std: bool = True,
                     eps: float = 1e-4) -> torch.Tensor:
    """(r - group mean) / (group std + eps) per completion; without ``scale_std`` (Dr. GRPO) just
    r - group mean. Rewards are laid out group by group: [g0 s0, g0 s1, ..., g1 s0, ...].
    The std is the sample std (n - 1), as in TRL and verl."""
    groups = _grouped(rewards, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale_std:
        if group_size < 2:
            raise ValueError("group_advantages: std scaling needs group_size >= 2")
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per completion, True when its group's rewards are not all equal (DAPO dynamic sampling):
    a group with zero reward variance has zero advantage and teaches nothing."""
    groups = _grouped(rewards, group_size)
    varied = (groups != groups[:, :1]).any(dim=1)
    return varied.repeat_interleave(group_size)


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the reward: 0 up to ``max_length - buffer`` tokens,
    then falling linearly to ``-factor`` at ``max_length``, and ``-factor`` beyond."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"overlong_penalty: need 0 < buffer <= max_length, got {buffer}, {max_length}")
    over = (lengths.float() - (max_length - buffer)).clamp(min=0) / buffer
    return -factor * over.clamp(max=1.0)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference) per token: exp(d) - d - 1, d = ref - logp.
    Unbiased, always >= 0."""
    d = ref_logp - logp
    return d.exp() - d - 1


def aggregate(values: torch.Tensor, mask: torch.Tensor, how: str, *, max_length: int | None = None) -> torch.Tensor:
    """Reduce per-token ``values`` to a scalar.

    token_mean: sum over all tokens / number of tokens (DAPO; long answers weigh more).
    seq_mean: mean over sequences of each sequence's token mean (GRPO).
    seq_sum_norm: mean over sequences of token sum / ``max_length`` (Dr. GRPO; no length bias).
    """
    if how == "token_mean":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    if how == "seq_mean":
        return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if how == "seq_sum_norm":
        if not max_length:
            raise ValueError("aggregate: seq_sum_norm needs max_length")
        return ((values * mask).sum(-1) / max_length).mean()
    raise ValueError(f"aggregate: unknown aggregation {how!r}; choose one of {AGGREGATIONS}")


def importance_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """pi/pi_old per token [B, T]. ``sequence`` (GSPO): every token of a sequence carries the
    sequence ratio exp(mean_t(logp - old_logp)); its gradient flows through each token's logp."""
    if level == "token":
        return (logp - old_logp).exp()
    if level == "sequence":
        seq = ((logp - old_logp) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return (seq.detach()[:, None] + logp - logp.detach()).exp()
    raise ValueError(f"importance_ratio: unknown level {level!r}; choose one of {RATIO_LEVELS}")


def tis_weights(train_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling weights per token: min(exp(train_logp - rollout_logp), cap),
    where ``train_logp`` is the trainer's log-prob of the sampled token under the policy that
    sampled it and ``rollout_logp`` the sampler's. Corrects for sampling from a slightly different
    distribution (the sampler's) than the one the loss assumes; the cap bounds the variance."""
    if cap <= 0:
        raise ValueError(f"tis_weights: cap must be > 0, got {cap}")
    return (train_logp - rollout_logp).exp().clamp(max=cap).detach()


@dataclass
class LossStats:
    clip_fraction: float
    kl: float
    ratio_mean: float


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                eps_low: float = 0.2, eps_high: float = 0.2, ratio_level: str = "token",
                aggregation: str = "token_mean", max_length: int | None = None,
                ref_logp: torch.Tensor | None = None, beta: float = 0.0,
                tis_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, LossStats]:
    """The clipped surrogate -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A), times ``tis_weight``
    per token when given, plus ``beta`` * k3 KL, aggregated over tokens. ``ref_logp`` is needed
    only when ``beta > 0``."""
    ratio = importance_ratio(logp, old_logp, mask, ratio_level)
    adv = advantages[:, None]
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    if tis_weight is not None:
        per_token = per_token * tis_weight
    kl_value = 0.0
    if beta > 0:
        if ref_logp is None:
            raise ValueError("policy_loss: beta > 0 needs ref_logp")
        kl = kl_k3(logp, ref_logp)
        per_token = per_token + beta * kl
        kl_value = float(aggregate(kl.detach(), mask, "token_mean"))
    loss = aggregate(per_token, mask, aggregation, max_length=max_length)
    with torch.no_grad():
        was_clipped = ((ratio < 1 - eps_low) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))
        stats = LossStats(clip_fraction=float(aggregate(was_clipped.float(), mask, "token_mean")), kl=kl_value,
                          ratio_mean=float(aggregate(ratio, mask, "token_mean")))
    return loss, stats


def minibatches(n: int, size: int, epochs: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Indices for ``epochs`` (mu) passes over ``n`` rollouts in shuffled minibatches of ``size``:
    one optimizer step per minibatch, so mu * ceil(n / size) steps per rollout batch."""
    if n < 1 or size < 1 or epochs < 1:
        raise ValueError(f"minibatches: n, size and epochs must be >= 1, got {n}, {size}, {epochs}")
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        yield from order.split(size)


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.float().reshape(-1, group_size)
