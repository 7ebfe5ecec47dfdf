"""Expert parallelism: each rank of a process group owns an equal, contiguous share of every MoE
layer's routed experts and computes them for the tokens of all ranks.

Each rank routes its own tokens, then two all-to-all exchanges move them: *dispatch* sends every
(token, chosen expert) pair to the rank owning that expert, and *combine* sends the expert outputs
back, where they are weighted by the gates and summed per token. The hidden-state exchanges are
differentiable (``torch.distributed.nn.functional``), so an expert's gradient collects the
contributions of every rank's tokens; routers and shared experts stay replicated (data parallel).
gloo (CPU) and NCCL both implement ``all_to_all_single`` with uneven splits.

Because every forward pass of a sharded model is collective, every rank must run as many passes
as the others, in the same order. Training runs one pass per minibatch on every rank (a rank
without rows runs ``token_free_pass``); sampling, where ranks decode for different numbers of
steps, runs inside ``lockstep``. A finished rank keeps serving its experts in token-free passes
until every rank is done, so the sampler itself needs no collective stop condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_autograd
from torch import nn


def owned_experts(num_experts: int, group: dist.ProcessGroup | None) -> range:
    """The experts this rank keeps: the rank-th of world-size equal, contiguous shares."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if num_experts % world:
        raise ValueError(f"expert parallelism: {num_experts} experts do not split evenly over {world} ranks")
    share = num_experts // world
    return range(rank * share, (rank + 1) * share)


def routed_parallel(x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor, experts: nn.ModuleList,
                    group: dist.ProcessGroup | None) -> torch.Tensor:
    """The routed-expert output [N, H] for this rank's tokens ``x`` [N, H] with gates ``weights``
    and experts ``chosen`` [N, k]; ``experts`` holds only this rank's share (None elsewhere).
    Every rank of ``group`` must call it together (once per MoE layer and forward pass)."""
    world = dist.get_world_size(group)
    share = len(experts) // world
    wanted = chosen.flatten()
    order = wanted.argsort(stable=True)  # pairs grouped by expert, hence by owning rank
    token = order // chosen.shape[1]
    send = torch.bincount(wanted // share, minlength=world)
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    send_sizes, recv_sizes = send.tolist(), recv.tolist()
    their_experts = wanted.new_empty(sum(recv_sizes))
    dist.all_to_all_single(their_experts, wanted[order], recv_sizes, send_sizes, group=group)
    their_x = dist_autograd.all_to_all_single(x.new_empty(sum(recv_sizes), x.shape[1]), x[token],
                                              recv_sizes, send_sizes, group=group)
    y = their_x * 0  # in the graph even when no token arrives, so every rank's backward joins the exchange
    for expert in their_experts.unique().tolist():
        rows = (their_experts == expert).nonzero().squeeze(1)
        y = y.index_copy(0, rows, experts[expert](their_x[rows]))
    back = dist_autograd.all_to_all_single(torch.empty_like(x[token]), y, send_sizes, recv_sizes, group=group)
    return torch.zeros_like(x).index_add(0, token, back * weights.flatten()[order, None].to(x.dtype))


def sharded_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` whose routed experts are spread over a group, in forward order."""
    return [m for m in model.modules() if getattr(m, "expert_group", None) is not None]


def expert_group(model: nn.Module) -> dist.ProcessGroup | None:
    """The group ``model``'s experts are spread over; None when this rank holds every expert."""
    layers = sharded_layers(model)
    return layers[0].expert_group if layers else None


def token_free_pass(model: nn.Module, *, backward: bool) -> None:
    """Run the sharded layers on no tokens of this rank (and back-propagate through them): the
    same collective calls, in the same order, as a real pass, so this rank's experts serve the
    other ranks' tokens (and collect their gradients) while it has nothing of its own."""
    layers = sharded_layers(model)
    if not layers:
        return
    weight = next(model.parameters())
    x = weight.new_zeros(1, 0, layers[0].config.hidden_size, requires_grad=backward)
    for layer in layers:  # chained, so the backward visits the layers in reverse, as a real one does
        x = x + layer(x)
    if backward:
        x.sum().backward()


def _anyone(flag: bool, group: dist.ProcessGroup, device: torch.device) -> bool:
    """Whether ``flag`` is true on some rank of ``group``."""
    votes = torch.tensor([int(flag)], device=device)
    dist.all_reduce(votes, group=group)
    return bool(votes.item())


@contextmanager
def lockstep(model: nn.Module) -> Iterator[None]:
    """Keep the ranks' forward passes paired inside the block, however many each rank runs: every
    forward pass of ``model`` first announces itself in an all-reduce, and on leaving the block a
    rank serves token-free passes (``sit_out``) until no rank announces one. Does nothing when the
    experts are not sharded. An exception inside the block leaves without waiting for the others."""
    group = expert_group(model)
    if group is None:
        yield
        return
    device = next(model.parameters()).device

    def announce(module: nn.Module, args: tuple) -> None:
        _anyone(True, group, device)

    handle = model.register_forward_pre_hook(announce)
    try:
        yield
    finally:
        handle.remove()
    sit_out(model)


def sit_out(model: nn.Module) -> None:
    """Take part in the other ranks' ``lockstep`` forward passes, without tokens, until they all end
    theirs; call it on a rank with nothing to run (and it is what ``lockstep`` ends with)."""
    group = expert_group(model)
    if group is None:
        return
    device = next(model.parameters()).device
    with torch.no_grad():
        while _anyone(False, group, device):
            token_free_pass(model, backward=False)
