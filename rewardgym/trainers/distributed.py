"""Data-parallel GRPO over torch.distributed: which groups a rank owns, and the few collectives a step needs.

A ``torchrun`` job runs one learner per rank. Every rank holds the whole model and optimizer,
samples and verifies its contiguous share of the step's task groups (its own env pool), and the
ranks then agree on one global batch: rewards, lengths and verdict flags are gathered (a few
floats per completion), so advantages, zero-variance filtering, minibatch order and metrics are
computed from the same global arrays as in one process. Each rank back-propagates only the
rows it owns, scaled by its share of the global normaliser (tokens for token_mean, sequences
otherwise), and gradients are SUMMED, so the update equals the single-process update on the
same global batch; clipping then sees the global norm.

Why a hand-written flat all-reduce and not DDP or FSDP2: DDP averages gradients, while global
normalisation needs a sum of pre-scaled parts; DDP reduces from backward hooks, so a rank that
owns none of a minibatch's rows would have to run a dummy forward pass; and for models that fit
on every rank one flat all-reduce per optimizer step costs what DDP's buckets do. Sharding
parameters and optimizer state (FSDP2) is what the next model size needs; it is not done here.

Sampling is seeded per group from (seed, step, global group index), so a group's completions do
not depend on how many ranks share the step, and a checkpoint resumes on any world size.
With world size 1 (a plain process, or ``torchrun --nproc_per_node 1``) nothing is initialised
and every collective is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

SAMPLING_STREAM = 0x5A4D  # keeps per-group sampling seeds apart from any other use of (seed, step, index)


def shard(n: int, rank: int, world_size: int) -> range:
    """Rank ``rank``'s contiguous block of ``n`` items; the first ``n % world_size`` ranks get one more,
    and rank order is item order (so gathering in rank order restores the global order)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard: rank {rank} outside a world of {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def group_seed(seed: int, step: int, group: int) -> int:
    """The sampling seed of global group ``group`` at ``step``: a hash, so nearby triples give unrelated streams."""
    words = [seed % 2**64, step, group, SAMPLING_STREAM]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0])


def group_generators(seed: int, step: int, groups: Iterable[int]) -> list[torch.Generator]:
    """One sampling generator per group, in the order of ``groups``."""
    return [torch.Generator().manual_seed(group_seed(seed, step, g)) for g in groups]


def choose_backend(cuda_devices: int, local_world_size: int) -> str:
    """NCCL when every rank on this node can have a GPU of its own, gloo otherwise (CPU, or more ranks than GPUs)."""
    return "nccl" if 0 < local_world_size <= cuda_devices else "gloo"


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the job and the collectives GRPO needs; the defaults are a single process."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live

    @property
    def main(self) -> bool:
        """Rank 0 owns the run directory: config, checkpoints, metrics, summary, logs."""
        return self.rank == 0

    def shard(self, n: int) -> range:
        return shard(n, self.rank, self.world_size)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a new tensor, on the input's device and dtype)."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: torch.Tensor) -> torch.Tensor:
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: torch.Tensor, op: Any) -> torch.Tensor:
        if self.world_size == 1:
            return values.clone()
        staged = values.detach().to(self.device, copy=True)
        dist.all_reduce(staged, op=op)
        return staged.to(values.device)

    def concat(self, parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each named 1-d array concatenated over ranks in rank order (shards may differ in length)."""
        if self.world_size == 1:
            return {k: np.asarray(v) for k, v in parts.items()}
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, {k: np.asarray(v) for k, v in parts.items()})
        return {k: np.concatenate([g[k] for g in gathered]) for k in parts}

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a small picklable value)."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its sum over ranks, in one flat all-reduce. A parameter whose
        gradient is None on every rank keeps None (the optimizer skips it, as in one process); one
        that has a gradient somewhere gets zeros where it had none."""
        if self.world_size == 1:
            return
        params = list(parameters)
        present = self.max(torch.tensor([p.grad is not None for p in params], dtype=torch.uint8))
        used = [p for p, flag in zip(params, present.tolist()) if flag]
        if not used:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in used])
        flat = self.sum(flat)
        offset = 0
        for p in used:
            part = flat[offset:offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
            p.grad = part.clone() if p.grad is None else p.grad.copy_(part)

    def clip_gradients(self, replicated: list[torch.nn.Parameter], sharded: list[torch.nn.Parameter],
                       max_norm: float) -> float:
        """Clip every gradient by the norm of the whole model's gradient and return that norm.
        ``replicated`` gradients are the same on every rank (already summed) and count once;
        ``sharded`` ones (this rank's experts, empty on every rank without expert parallelism)
        are disjoint across ranks, so their squared norms are summed over ranks."""
        if not sharded:
            return float(torch.nn.utils.clip_grad_norm_(replicated, max_norm))
        norm = (_squared_norm(replicated) + self.sum(_squared_norm(sharded))).sqrt()
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in replicated + sharded:
            if p.grad is not None:
                p.grad.mul_(scale.to(p.grad.dtype))
        return float(norm)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


SINGLE = DataParallel()


def _squared_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """The squared L2 norm of the parameters' gradients together, in float64."""
    return sum((torch.linalg.vector_norm(p.grad, dtype=torch.float64) ** 2 for p in parameters if p.grad is not None),
               torch.zeros((), dtype=torch.float64))


def check_world(tasks_per_step: int, curriculum: bool, world_size: int) -> None:
    """Settings a data-parallel run cannot honour, as one clear error."""
    problems = []
    if tasks_per_step < world_size:
        problems.append(f"tasks_per_step ({tasks_per_step}) must be at least the number of ranks ({world_size})")
    if curriculum:
        problems.append("curriculum=true is single-process only for now (each rank would move its own level)")
    if problems:
        raise ValueError("distributed train: " + "; ".join(problems))


def launch(timeout_minutes: float = 120.0) -> tuple[DataParallel, bool]:
    """This process's DataParallel from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, ...),
    initialising the default process group when there are several ranks; the timeout covers rank 0's
    SFT cold start, which the others wait for. Returns it and whether this call initialised the
    group (and so should ``shutdown`` it). An already initialised group (a caller's own) is used as it is."""
    if dist.is_available() and dist.is_initialized():
        return _attached(dist.get_backend()), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DataParallel(), False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = choose_backend(cuda, local_world)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return _attached(backend), True


def _attached(backend: str) -> DataParallel:
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def shutdown(owned: bool) -> None:
    """Tear down the process group ``launch`` initialised (not a caller's own)."""
    if owned and dist.is_initialized():
        dist.destroy_process_group()
