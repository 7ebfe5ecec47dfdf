"""Warm servers: a request in, one JSON line out.

Starting Python costs more than most sandboxed runs, so each backend keeps servers running and
sends them one request at a time: a host supervisor process (supervisor.py ``serve``) for
``local`` and fresh-per-run ``bubblewrap``, a bwrap box with its zygote (zygote.py) for warm
``bubblewrap``, a zygote in one long-lived ``exec`` inside each container for ``docker``. A
server that fails or overruns its deadline is killed and replaced; the failure is a SandboxError.
"""

from __future__ import annotations

import atexit
import os
import select
import socket
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

from .base import SANDBOX_ENV, SUPERVISOR, Backend, Limits, SandboxError


class Channel(ABC):
    """One supervisor server, used by one caller at a time."""

    @abstractmethod
    def call(self, request: bytes, timeout: float) -> bytes:
        """Send one request, return the answer line; SandboxError if the server fails or is late."""

    @abstractmethod
    def close(self) -> None:
        """Stop the server."""


class ProcessChannel(Channel):
    """A server as a child process of this one: by default a host supervisor server (local, and
    bubblewrap when not root); ``argv`` and Popen keywords start another (a bubblewrap box)."""

    def __init__(self, argv: list[str] | None = None, **popen: Any) -> None:
        self.proc = subprocess.Popen(argv or [sys.executable, "-I", "-S", str(SUPERVISOR)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, **popen)

    def call(self, request: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        try:
            self.proc.stdin.write(request)
        except OSError as exc:
            raise SandboxError(f"the supervisor server is gone: {exc}") from None
        fd, answer = self.proc.stdout.fileno(), bytearray()
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SandboxError(f"the supervisor did not answer within {timeout:.0f}s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SandboxError(f"the supervisor server exited ({self.proc.poll()})")
            answer.extend(chunk)
        return bytes(answer)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


class DockerChannel(Channel):
    """A supervisor server as one long-lived ``exec`` in a container, over its attach socket."""

    def __init__(self, api: Any, container_id: str, command: list[str]):
        from docker.utils.socket import frames_iter
        exec_id = api.exec_create(container_id, command, stdin=True, stdout=True, stderr=True, user="0:0",
                                  workdir="/", environment=dict(SANDBOX_ENV, HOME="/work"))["Id"]
        self.conn = api.exec_start(exec_id, socket=True)
        self.sock = getattr(self.conn, "_sock", self.conn)
        self.frames = frames_iter(self.conn, tty=False)
        self.errors = bytearray()

    def call(self, request: bytes, timeout: float) -> bytes:
        answer = bytearray()
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(request)
            while not answer.endswith(b"\n"):
                stream, chunk = next(self.frames)
                (answer if stream == 1 else self.errors).extend(chunk)
        except (socket.timeout, TimeoutError):
            raise SandboxError(f"the supervisor in the container did not answer within {timeout:.0f}s") from None
        except (StopIteration, OSError) as exc:
            raise SandboxError(f"the supervisor in the container is gone ({type(exc).__name__}): "
                               f"{bytes(self.errors[-300:])!r}") from None
        return bytes(answer)

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


class ChannelPool:
    """Idle host-side servers, one taken per call (so concurrent callers never share one)."""

    def __init__(self, factory: Callable[[], ProcessChannel], keep: int = 8):
        self.factory, self.keep = factory, keep
        self._idle: list[ProcessChannel] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self) -> ProcessChannel:
        """An idle server, or a new one."""
        with self._lock:
            if self._pid != os.getpid():  # a forked copy: the idle servers belong to the parent
                self._idle, self._pid = [], os.getpid()
            channel = self._idle.pop() if self._idle else None
        return channel or self.factory()

    def give_back(self, channel: ProcessChannel, reuse: bool) -> None:
        """Keep ``channel`` for the next call, or stop it (not ``reuse``, or enough are idle)."""
        if reuse:
            with self._lock:
                if len(self._idle) < self.keep and self._pid == os.getpid():
                    self._idle.append(channel)
                    return
        channel.close()

    def call(self, request: bytes, timeout: float) -> bytes:
        channel = self.take()
        try:
            answer = channel.call(request, timeout)
        except BaseException:
            channel.close()
            raise
        self.give_back(channel, reuse=True)
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if self._pid != os.getpid():  # a forked copy must not stop the parent's servers
            return
        for channel in idle:
            channel.close()


class HostBackend(Backend):
    """A backend whose supervisor servers run on this host (local, bubblewrap)."""

    def __init__(self, factory: Callable[[], ProcessChannel] = ProcessChannel) -> None:
        self._servers = ChannelPool(factory)
        atexit.register(self.close)

    def _call(self, request: bytes, limits: Limits) -> bytes:
        return self._servers.call(request, limits.wall_time + self.grace)

    def close(self) -> None:
        self._servers.close()
