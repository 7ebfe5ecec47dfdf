"""Expert-parallel training state: cutting a full policy and its optimizer state into this rank's
share on start or resume, and putting the whole model back together for a checkpoint.

With ``expert_parallel: true`` under torchrun, each rank keeps the replicated parameters (attention,
embeddings, routers, shared experts) and an equal share of every MoE layer's routed experts
(``moe.shard_experts``). Every rank starts from the same full model (the SFT start or a checkpoint)
and drops the experts it does not own; its optimizer holds state for its own parameters only.

Checkpoints stay in the single-process layout: before saving, the ranks send their experts and
those experts' optimizer state to rank 0, which assembles a full model and a full optimizer state
dict. So a checkpoint resumes in one process, on another world size, or with expert parallelism
off, and it is written atomically by one process as before. The price is that rank 0 holds the full
model and optimizer state while it saves; per-rank optimizer shards would avoid that but tie a
checkpoint to one world size and need a multi-file atomic commit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .distributed import DataParallel
from .models.expert_parallel import expert_group
from .models.moe import moe_layers, shard_experts, sharded_prefixes


def parameter_names(model: nn.Module) -> list[str]:
    """Names in the order ``model.parameters()`` (and so an optimizer built on it) lists them."""
    return [name for name, _ in model.named_parameters()]


def state_by_name(optimizer_state: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer state dict over the parameters ``names`` as (per-parameter state keyed by name,
    the settings of its one parameter group)."""
    groups = optimizer_state["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != len(names):
        raise ValueError(f"optimizer state: expected one parameter group of {len(names)} parameters, got "
                         f"{[len(g['params']) for g in groups]}")
    order = groups[0]["params"]
    state = {names[order.index(index)]: value for index, value in optimizer_state["state"].items()}
    return state, {k: v for k, v in groups[0].items() if k != "params"}


def state_for(by_name: dict[str, Any], settings: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The state dict of an optimizer whose one group holds the parameters ``names`` in that order."""
    return {"state": {i: by_name[name] for i, name in enumerate(names) if name in by_name},
            "param_groups": [{**settings, "params": list(range(len(names)))}]}


def shard_policy(policy: nn.Module, optimizer_state: dict[str, Any] | None,
                 dp: DataParallel) -> dict[str, Any] | None:
    """Keep this rank's share of ``policy``'s routed experts (a no-op in one process) and return the
    share of ``optimizer_state`` (a full, single-process one, or None) that this rank's optimizer loads."""
    if not moe_layers(policy):
        raise ValueError("expert_parallel=true needs a Mixture-of-Experts policy (num_experts > 0, or a MoE model=)")
    if dp.world_size == 1:
        return optimizer_state
    full = parameter_names(policy)
    shard_experts(policy)
    if optimizer_state is None:
        return None
    return state_for(*state_by_name(optimizer_state, full), parameter_names(policy))


def gather_full(policy: nn.Module, optimizer: torch.optim.Optimizer,
                dp: DataParallel) -> tuple[nn.Module | None, torch.optim.Optimizer | None]:
    """The full policy and an optimizer over it with the whole state, on rank 0 (None elsewhere);
    ``policy`` and ``optimizer`` themselves without expert parallelism. Collective: every rank calls it."""
    group = expert_group(policy)
    if group is None:
        return policy, optimizer
    prefixes = tuple(sharded_prefixes(policy))
    states, settings = state_by_name(optimizer.state_dict(), parameter_names(policy))
    mine = ({k: v.detach().cpu() for k, v in policy.state_dict().items() if k.startswith(prefixes)},
            {k: _to_cpu(v) for k, v in states.items() if k.startswith(prefixes)})
    parts: list[Any] = [None] * dist.get_world_size(group) if dp.main else None
    dist.gather_object(mine, parts, dst=dist.get_global_rank(group, 0), group=group)
    if not dp.main:
        return None, None
    weights, by_name = policy.state_dict(), dict(states)
    for part_weights, part_states in parts:
        weights.update(part_weights)
        by_name.update(part_states)
    full = type(policy)(policy.config).to(next(policy.parameters()))
    full.load_state_dict(weights)
    full_optimizer = type(optimizer)(full.parameters())  # its settings come with the state dict it loads
    full_optimizer.load_state_dict(state_for(by_name, settings, parameter_names(full)))
    return full, full_optimizer


def _to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
