"""What every sandbox backend shares: limits in, an Execution out, and the supervisor protocol."""

from __future__ import annotations

import base64
import itertools
import json
import os
import posixpath
import signal
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

SUPERVISOR = Path(__file__).with_name("supervisor.py")
ZYGOTE = Path(__file__).with_name("zygote.py")
PROGRAM_NAME = "main.py"
#: Sandboxed code runs as a uid from this range when the caller is root: RLIMIT_NPROC is not
#: enforced for root, and a uid of its own per run lets the supervisor kill everything of it.
UID_BASE, UID_SPAN = 200_000, 1_000_000
SUPERVISOR_GRACE = 10.0
STOP_REASONS = ("exit", "timeout", "memory", "output_limit", "killed")
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
_serial = itertools.count()


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): a backend broke or was misused."""


class SandboxUnavailable(SandboxError):
    """The requested backend cannot run on this machine; the message says how to get it."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Sizes in MiB, times in seconds.

    wall_time: killed after this long (the bound a verifier relies on).
    cpu_time: RLIMIT_CPU of each process. memory_mb: address space per process (and the
    container's memory for docker). processes: processes of the sandbox uid (fork bombs).
    output_bytes: cap on each of stdout and stderr; more stops the run. work_mb: size of the
    work directory's tmpfs (bubblewrap, docker).
    """

    wall_time: float = 10.0
    cpu_time: float = 10.0
    memory_mb: int = 512
    output_bytes: int = 1 << 20
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 32
    work_mb: int = 64

    def __post_init__(self) -> None:
        bad = [f"{name}={value!r}" for name, value in asdict(self).items()
               if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0]
        if bad:
            raise ValueError(f"Limits: every limit must be a positive number, got {', '.join(bad)}")
        if self.memory_mb < 32 or self.open_files < 8:
            raise ValueError(f"Limits: memory_mb >= 32 and open_files >= 8 needed to start Python, "
                             f"got memory_mb={self.memory_mb}, open_files={self.open_files}")


@dataclass(frozen=True)
class Execution:
    """The outcome of one run.

    status: why it stopped, one of STOP_REASONS. exit_code: the process's exit status, or
    minus the signal that killed it. orphans: processes the program left behind that the
    sandbox had to kill after it finished (daemonised children). uid: the host uid the
    program ran as (None when the caller is not root and the program ran as the caller).
    """

    stdout: str
    stderr: str
    exit_code: int
    status: str
    wall_time: float
    cpu_time: float
    peak_memory_mb: float
    backend: str
    orphans: int = 0
    uid: int | None = None

    @property
    def ok(self) -> bool:
        """Ran to completion and exited 0."""
        return self.status == "exit" and self.exit_code == 0


def check_files(files: Mapping[str, str | bytes] | None, program: str) -> dict[str, str]:
    """Validate and base64-encode the work-dir files (the program becomes ``main.py``)."""
    if not isinstance(program, str):
        raise TypeError(f"sandbox.run: program must be Python source as str, got {type(program).__name__}")
    out = {}
    for name, data in (files or {}).items():
        norm = posixpath.normpath(name) if isinstance(name, str) else ""
        if not norm or norm.startswith(("/", "..")) or norm != name or name == PROGRAM_NAME:
            raise ValueError(f"sandbox.run: file name {name!r} must be a relative path inside the work dir "
                             f"(no '..', not {PROGRAM_NAME!r})")
        raw = data.encode() if isinstance(data, str) else data
        if not isinstance(raw, bytes):
            raise TypeError(f"sandbox.run: file {name!r} must be str or bytes, got {type(data).__name__}")
        out[name] = base64.b64encode(raw).decode()
    out[PROGRAM_NAME] = base64.b64encode(program.encode()).decode()
    return out


def fresh_uid() -> int:
    """A uid from the sandbox range, different for successive calls in this process."""
    return UID_BASE + (os.getpid() * 1009 + next(_serial)) % UID_SPAN


def uid_block(size: int) -> int:
    """The first of ``size`` consecutive uids from the sandbox range, a different block for
    successive calls in this process."""
    return UID_BASE + (os.getpid() * 1009 + next(_serial)) % (UID_SPAN // size) * size


def sandbox_uid() -> int | None:
    """The uid a host-side run uses: a fresh one when root, else None (run as the caller)."""
    return fresh_uid() if os.getuid() == 0 else None


def zygote_command(python: str, mode: str) -> list[str]:
    """The command that starts a zygote (zygote.py) in a sandbox: both sources travel in it, so
    the sandbox needs nothing of this package."""
    sources = [(path.stem, path.read_text()) for path in (SUPERVISOR, ZYGOTE)]
    loader = ("import sys, types\n"
              f"for name, source in {sources!r}:\n"
              "    module = sys.modules[name] = types.ModuleType(name)\n"
              "    module.__file__ = name + '.py'\n"
              "    exec(compile(source, module.__file__, 'exec'), module.__dict__)\n"
              "sys.modules['zygote'].main(sys.argv[1])\n")
    return [python, "-s", "-c", loader, mode]


def request_line(*, argv: list[str] | None, files: dict[str, str], limits: Limits, stdin: bytes,
                 uid: int | None, workdir: str | None, dedicated: bool, **extra: object) -> bytes:
    """The supervisor's request: one JSON line, then the raw stdin bytes."""
    limits_dict = asdict(limits)
    if uid is None:
        limits_dict["processes"] += own_process_count()
    head = {"argv": argv, "files": files, "limits": limits_dict, "uid": uid, "gid": uid,
            "workdir": workdir, "dedicated": dedicated and uid is not None, "env": dict(SANDBOX_ENV),
            "stdin_len": len(stdin), **extra}
    return json.dumps(head).encode() + b"\n" + stdin


def own_process_count() -> int:
    """Processes of the calling uid: RLIMIT_NPROC counts them too when the program runs as us."""
    me = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == me)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def parse_answer(raw: bytes, backend: str) -> dict:
    """The supervisor's JSON answer line; SandboxError when it is missing or reports an error."""
    try:
        result = json.loads(raw.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise SandboxError(f"{backend}: the supervisor returned no result ({raw[-300:]!r})") from exc
    if "error" in result:
        raise SandboxError(f"{backend}: {result['error']}")
    return result


def execution(result: dict, backend: str, uid: int | None, *, shell_codes: bool = False) -> Execution:
    """Turn the supervisor's answer (parse_answer) into an Execution.

    ``shell_codes``: the program ran under a launcher (bwrap) that reports death by signal N
    as exit status 128+N, so such statuses are read as signals.
    """
    stdout = base64.b64decode(result["stdout"]).decode("utf-8", "replace")
    stderr = base64.b64decode(result["stderr"]).decode("utf-8", "replace")
    code = int(result["exit_code"])
    if shell_codes and 128 < code <= 128 + 64:
        code = 128 - code
    return Execution(stdout=stdout, stderr=stderr, exit_code=code, status=_status(result["stop"], code, stderr),
                     wall_time=float(result["wall_time"]), cpu_time=float(result["cpu_time"]),
                     peak_memory_mb=result["max_rss_kb"] / 1024, backend=backend,
                     orphans=int(result["orphans"]), uid=uid)


def _status(stop: str | None, code: int, stderr: str) -> str:
    if stop:
        return stop
    if code == -signal.SIGXCPU:
        return "timeout"
    if code != 0 and "MemoryError" in stderr[-2000:]:
        return "memory"
    if code < 0:
        return "killed"
    return "exit"


class Backend(ABC):
    """One way of running untrusted Python. Subclasses say whether they work here and run."""

    name: str = ""
    #: Extra seconds a run may take beyond its wall-clock limit (start-up, clean-up) before the
    #: sandbox itself is declared broken.
    grace: float = SUPERVISOR_GRACE

    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when the backend can run on this machine, else why not and how to fix it."""

    @abstractmethod
    def run(self, program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None) -> Execution:
        """Run ``program`` (Python source, saved as main.py in a fresh work dir) with ``stdin``."""

    def close(self) -> None:
        """Release what the backend holds (containers); the default holds nothing."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
