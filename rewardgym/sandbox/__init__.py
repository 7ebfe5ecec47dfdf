"""Isolated execution of untrusted Python: one interface, three backends.

    from rewardgym import sandbox
    ex = sandbox.run("print(input()[::-1])", stdin="abc\n", limits=sandbox.Limits(wall_time=5))
    ex.stdout, ex.status, ex.exit_code          # 'cba\n', 'exit', 0

Backends: ``bubblewrap`` (namespaces; the default where bwrap works), ``docker`` (a warm pool
of locked-down containers), ``local`` (rlimits only, no isolation; only when named). ``auto``
picks bubblewrap, else docker, else raises SandboxUnavailable saying how to install one; it
never falls back to ``local``. The environment variable REWARDGYM_SANDBOX sets the default
name. Whatever the backend, the program runs in a separate process tree under the
supervisor (supervisor.py), never in the calling process.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from .base import STOP_REASONS, Backend, Execution, Limits, SandboxError, SandboxUnavailable
from .bubblewrap import BubblewrapBackend
from .docker import DockerBackend
from .local import LocalBackend

BACKENDS: dict[str, type[Backend]] = {"bubblewrap": BubblewrapBackend, "docker": DockerBackend, "local": LocalBackend}
_shared: dict[str, Backend] = {}
_lock = threading.Lock()


def _auto(**kwargs: Any) -> Backend:
    reasons = []
    for name in ("bubblewrap", "docker"):
        cls = BACKENDS[name]
        why = cls.availability()
        if why is None:
            try:
                return cls(**kwargs)
            except SandboxUnavailable as exc:
                why = str(exc)
        reasons.append(f"{name}: {why}")
    raise SandboxUnavailable("no isolating sandbox backend is available (the 'local' backend, which does not "
                             "isolate, is used only when named explicitly):\n  " + "\n  ".join(reasons))


def get_backend(name: str | None = None, **kwargs: Any) -> Backend:
    """A new backend by name ("auto", "bubblewrap", "docker", "local"); kwargs go to its constructor.
    ``None`` means $REWARDGYM_SANDBOX, else "auto"."""
    name = name or os.environ.get("REWARDGYM_SANDBOX", "auto")
    if name == "auto":
        return _auto(**kwargs)
    if name not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {name!r}; choose one of {['auto', *BACKENDS]}")
    return BACKENDS[name](**kwargs)


def shared_backend(name: str | None = None) -> Backend:
    """One backend per name for the whole process (so docker's warm pool is reused)."""
    key = name or os.environ.get("REWARDGYM_SANDBOX", "auto")
    with _lock:
        if key not in _shared:
            _shared[key] = get_backend(key)
        return _shared[key]


def run(program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None, backend: str | Backend | None = None) -> Execution:
    """Run Python source ``program`` (saved as main.py beside ``files``) in the sandbox."""
    chosen = backend if isinstance(backend, Backend) else shared_backend(backend)
    return chosen.run(program, stdin=stdin, files=files, limits=limits)


__all__ = ["BACKENDS", "STOP_REASONS", "Backend", "BubblewrapBackend", "DockerBackend", "Execution", "Limits",
           "LocalBackend", "SandboxError", "SandboxUnavailable", "get_backend", "run", "shared_backend"]
