"""The ``docker`` backend: a pool of warm containers of the Docker Engine (the ``docker`` package).

Each container starts with no network (``network_mode=none``), memory, pids and CPU limits, a
read-only root, tmpfs /work and /tmp, every capability dropped but the four the supervisor
needs, and ``no-new-privileges``; its PID 1 is a tiny reaper. A zygote (zygote.py, sent as
source) runs as root in one long-lived ``exec`` per container and forks each run, so a run
costs neither a ``docker exec`` nor a Python start-up. Each program runs as the container's
own unprivileged uid (which cannot signal or ptrace the root zygote) in a fresh work dir with
the rlimits and wall-clock kill; afterwards every process of that uid is killed, so a
daemonised child or fork-bomb survivor cannot outlive the run, and the writable tmpfs (/work,
/tmp, /dev/shm, /dev/mqueue) are emptied, so no file reaches the next run. A container serves
one run at a time and is replaced after any run that hit a limit, left processes behind or
left what could not be removed (SysV IPC objects), after a supervisor failure, and after
``max_uses`` runs.

The image needs only ``python3`` on its PATH: ``python:3.12-slim`` works, and
scripts/build-sandbox-image.sh builds ``rewardgym-sandbox:latest`` with no registry.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from typing import Any, Mapping

from .base import Backend, Execution, Limits, SandboxError, SandboxUnavailable, check_files, \
    execution, fresh_uid, parse_answer, request_line, zygote_command
from .channel import DockerChannel

DEFAULT_IMAGE = "rewardgym-sandbox:latest"
LABEL = "rewardgym.sandbox"
# PID 1 of each container: reaps whatever is re-parented to it, forever.
REAPER = ("import os, time\n"
          "while True:\n"
          "    try:\n"
          "        os.wait()\n"
          "    except ChildProcessError:\n"
          "        time.sleep(0.5)\n")
# The zygote and its leaders run as root in the container with only these capabilities: they
# switch the program to the container's uid (the program loses every capability on that
# switch), hand it the work dir, and kill what it leaves. The program cannot signal them.
SUPERVISOR_CAPS = ["SETUID", "SETGID", "KILL", "CHOWN"]
_SETUP_HINT = ("start the Docker Engine (apt-get install docker.io; dockerd &) and make the image "
               "(scripts/build-sandbox-image.sh, or docker pull python:3.12-slim and pass image=...)")


def _client(timeout: int = 30) -> Any:
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable("sandbox backend 'docker' needs the docker package: pip install 'rewardgym[docker]'") \
            from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine reachable
        raise SandboxUnavailable(f"sandbox backend 'docker': no Docker Engine reachable ({exc}); {_SETUP_HINT}") \
            from None
    return client


class _Container:
    """One warm container, the uid its programs run as, and its supervisor server."""

    def __init__(self, handle: Any, uid: int, channel: DockerChannel):
        self.handle, self.uid, self.channel, self.uses = handle, uid, channel, 0


class DockerBackend(Backend):
    """Args:
      image: the image to run (needs python3 on PATH).
      pool_size: warm containers kept; also how many runs go at once.
      max_uses: runs per container before it is replaced.
      memory_mb, processes, cpus: the container's cgroup limits (per-run rlimits come from Limits).
      work_mb: size of the container's /work tmpfs.
    """

    name = "docker"

    def __init__(self, *, image: str = DEFAULT_IMAGE, pool_size: int = 2, max_uses: int = 100,
                 memory_mb: int = 1024, processes: int = 128, cpus: float = 1.0, work_mb: int = 128,
                 python: str = "python3"):
        if pool_size < 1 or max_uses < 1:
            raise ValueError(f"DockerBackend: pool_size and max_uses must be >= 1, got {pool_size}, {max_uses}")
        self.client = _client()
        try:
            self.client.images.get(image)
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound or an API error
            raise SandboxUnavailable(f"sandbox backend 'docker': image {image!r} not found; {_SETUP_HINT}") from None
        self.image, self.pool_size, self.max_uses, self.python = image, pool_size, max_uses, python
        self.memory_mb, self.processes, self.cpus, self.work_mb = memory_mb, processes, cpus, work_mb
        self._idle: list[_Container] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        atexit.register(self.close)

    @classmethod
    def availability(cls) -> str | None:
        try:
            _client(timeout=10)
        except SandboxUnavailable as exc:
            return str(exc)
        return None

    # -- the pool ----------------------------------------------------------------------
    def _start(self) -> _Container:
        uid = fresh_uid()
        handle = self.client.containers.run(
            self.image, command=[self.python, "-I", "-S", "-c", REAPER], detach=True, user="0:0",
            network_mode="none", mem_limit=f"{self.memory_mb}m", memswap_limit=f"{self.memory_mb}m",
            pids_limit=self.processes, nano_cpus=int(self.cpus * 1e9), read_only=True,
            tmpfs={"/work": f"size={self.work_mb}m,mode=1777", "/tmp": "size=16m,mode=1777"},
            cap_drop=["ALL"], cap_add=SUPERVISOR_CAPS, security_opt=["no-new-privileges"], hostname="sandbox",
            labels={LABEL: "1"}, working_dir="/work")
        try:
            channel = DockerChannel(self.client.api, handle.id, zygote_command(self.python, "container"))
        except Exception:
            self._remove_handle(handle)
            raise
        return _Container(handle, uid, channel)

    def _acquire(self) -> _Container:
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("DockerBackend: used after close()")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.pool_size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return self._start()
        except Exception as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise SandboxError(f"DockerBackend: cannot start a container of {self.image!r}: {exc}") from exc

    def _release(self, box: _Container, healthy: bool) -> None:
        box.uses += 1
        keep = healthy and box.uses < self.max_uses and not self._closed
        if not keep:
            self._remove(box)
        with self._cond:
            if keep:
                self._idle.append(box)
            else:
                self._count -= 1
            self._cond.notify()

    @staticmethod
    def _remove_handle(handle: Any) -> None:
        try:
            handle.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _remove(self, box: _Container) -> None:
        box.channel.close()
        self._remove_handle(box.handle)

    def close(self) -> None:
        """Remove every idle container; busy ones are removed when their run ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for box in idle:
            self._remove(box)

    # -- one run -----------------------------------------------------------------------
    def run(self, program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None) -> Execution:
        limits = limits or Limits()
        encoded = check_files(files, program)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        box = self._acquire()
        healthy = False
        try:
            request = request_line(argv=None, files=encoded, limits=limits, stdin=data, uid=box.uid,
                                   workdir=f"/work/{uuid.uuid4().hex}", dedicated=True)
            answer = parse_answer(box.channel.call(request, limits.wall_time + self.grace), self.name)
            result = execution(answer, self.name, box.uid)
            healthy = result.status == "exit" and result.orphans == 0 and not answer["residue"]
            return result
        finally:
            self._release(box, healthy)
