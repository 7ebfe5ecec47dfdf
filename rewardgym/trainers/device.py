"""Where the learner's tensors live: the ``device`` and ``dtype`` settings, checked and resolved.

``device``: ``auto`` (a CUDA GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
In a multi-rank job the process group already fixed each rank's device (its LOCAL_RANK GPU under
NCCL, the CPU under gloo), so ``auto`` means that device, as does any setting naming it (``cuda`` for a rank's GPU), and
anything else is an error.
Only the model and what it computes move: the tokenizer, the environments, the sampling
generators (CPU, so a seed draws the same uniforms on every device) and the saved checkpoints
(CPU tensors) stay on the CPU.
"""

from __future__ import annotations

import re

import torch

DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _device_problem(device: str) -> str | None:
    return None if DEVICE.fullmatch(device) else f"device {device!r} not one of 'auto', 'cpu', 'cuda', 'cuda:N'"


def setting_problems(device: str, dtype: str) -> list[str]:
    """What is wrong with a ``device`` and ``dtype`` setting, one message each (none when both are valid)."""
    problems = [problem] if (problem := _device_problem(device)) else []
    if dtype not in DTYPES:
        problems.append(f"dtype {dtype!r} not one of {tuple(DTYPES)}")
    return problems


def resolve_device(setting: str, job_device: torch.device | None = None) -> torch.device:
    """The torch device for a ``device`` setting; ``job_device`` is the one a multi-rank process group
    assigned this rank (None in a single process)."""
    if problem := _device_problem(setting):
        raise ValueError(problem)
    if job_device is not None:
        if setting == "auto" or torch.device(setting) in (job_device, torch.device(job_device.type)):
            return job_device
        raise ValueError(f"device {setting!r}: this rank of the distributed job runs on {job_device} "
                         "(NCCL gives each rank its LOCAL_RANK GPU, gloo the CPU)")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {setting!r}: torch sees no CUDA GPU (torch {torch.__version__})")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {setting!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
        device = torch.device("cuda", index)
    return device
