"""Expert parallelism: each rank of a process group owns an equal, contiguous share of every MoE
layer's routed experts and computes them for the tokens of all ranks.

Each rank routes its own tokens, then two all-to-all exchanges move them: *dispatch* sends every
(token, chosen expert) pair to the rank owning that expert, and *combine* sends the expert outputs
back, where they are weighted by the gates and summed per token. The hidden-state exchanges are
differentiable (``torch.distributed.nn.functional``), so an expert's gradient collects the
contributions of every rank's tokens; routers and shared experts stay replicated (data parallel).
gloo (CPU) and NCCL both implement ``all_to_all_single`` with uneven splits.
"""

from __future__ import annotations

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
    y = torch.zeros_like(their_x)
    for expert in their_experts.unique().tolist():
        rows = (their_experts == expert).nonzero().squeeze(1)
        y = y.index_copy(0, rows, experts[expert](their_x[rows]))
    back = dist_autograd.all_to_all_single(torch.empty_like(x[token]), y, send_sizes, recv_sizes, group=group)
    return torch.zeros_like(x).index_add(0, token, back * weights.flatten()[order, None].to(x.dtype))
