"""Sandbox backends for tests: one pytest param per backend, skipped with the reason when absent."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from rewardgym.sandbox import BACKENDS, Backend, Execution, SandboxUnavailable

MARKS = {"bubblewrap": [pytest.mark.bwrap], "docker": [pytest.mark.docker], "local": []}
ISOLATING = ("bubblewrap", "docker")


def backend_params(names=tuple(BACKENDS)):
    return [pytest.param(name, marks=MARKS[name], id=name) for name in names]


def open_backend(name: str, pool_size: int = 1) -> Backend:
    why = BACKENDS[name].availability()
    if why:
        pytest.skip(f"sandbox backend {name!r} unavailable here: {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # local's no-isolation warning
        try:
            return BACKENDS[name](pool_size=pool_size) if name == "docker" else BACKENDS[name]()
        except SandboxUnavailable as exc:  # e.g. the engine runs but the image was not built
            pytest.skip(str(exc))


def processes_of(uid: int) -> list[int]:
    """Live or zombie processes whose real uid is ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
        if int(line.split()[1]) == uid:
            found.append(int(entry.name))
    return found


def assert_nothing_left(ex: Execution) -> None:
    """No process of the run survives it (checkable when the run had a uid of its own)."""
    if ex.uid is not None and os.getuid() == 0:
        assert processes_of(ex.uid) == [], f"processes of uid {ex.uid} left behind"
