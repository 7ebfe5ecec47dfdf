"""The ``bubblewrap`` backend: Linux namespaces through ``bwrap``; the default where it works.

A sandbox has new user, PID, network, IPC, UTS and cgroup namespaces (so no interface but
loopback), a read-only view of /usr (and the /bin, /lib symlinks or binds), no /etc, /home or
/root, and a read-only root; the program gets a private size-limited tmpfs for /work (its
files) and /tmp.

When the caller is root (the usual case for a trainer's sandbox) on an architecture listed in
zygote.SYS_KEYCTL, sandboxes are warm *boxes*:
one bwrap each, started as an unprivileged host uid Z, whose user namespace maps uid 0 to Z
(the zygote, with the few capabilities it needs inside that namespace only) and uids
1..RUN_UIDS to as many further host uids (written here as root, through
``--userns-block-fd``). The zygote (zygote.py) forks each run into new mount, PID and IPC
namespaces as one of those uids, a different one each run, so no two runs of a box share a
uid and none has the zygote's; a box is replaced after RUN_UIDS runs and after any run that
hit a limit or left processes.

Otherwise (no second uid can be mapped without root) each run is a fresh bwrap started by the
host supervisor (see supervisor.py), with rlimits, the wall-clock kill and the clean-up;
``--die-with-parent`` takes its PID namespace down with bwrap.
"""

from __future__ import annotations

import json
import os
import platform
import select
import shutil
import signal
import subprocess
import time
import warnings
from functools import lru_cache
from typing import Mapping

from .base import PROGRAM_NAME, SANDBOX_ENV, Execution, Limits, SandboxError, SandboxUnavailable, check_files, \
    execution, parse_answer, request_line, sandbox_uid, uid_block, zygote_command
from .channel import HostBackend, ProcessChannel
from .zygote import SYS_KEYCTL

WORKDIR = "/work"
TMP_MB = 16
#: Runs per box, each as a uid of its own (a new box costs about a hundred runs' time).
RUN_UIDS = 256
#: What the zygote may do inside its box's user namespace (nothing outside it): new mount,
#: PID and IPC namespaces and tmpfs mounts per run, the switch to the run's uid, handing the
#: files to it, and dropping the capability bounding set of the program.
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_SETPCAP")
BOX_START_TIMEOUT = 30.0
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def _system_binds() -> list[str]:
    """/usr read-only, and the merged-/usr symlinks (or real dirs) beside it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LEVEL:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def bwrap_argv(bwrap: str, limits: Limits, command: list[str]) -> list[str]:
    """The full bwrap command line; ``@FILES@`` is where the supervisor puts the --file args."""
    return [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox", *_system_binds(), "--proc", "/proc", "--dev", "/dev",
            "--size", str(TMP_MB << 20), "--tmpfs", "/tmp",
            "--size", str(limits.work_mb << 20), "--tmpfs", WORKDIR,
            "@FILES@", "--remount-ro", "/", "--chdir", WORKDIR, "--setenv", "HOME", WORKDIR,
            "--", *command]


def box_argv(bwrap: str, python: str, block_fd: int, info_fd: int) -> list[str]:
    """The bwrap command line of a warm box running the zygote."""
    env = {**SANDBOX_ENV, "HOME": WORKDIR}
    return [bwrap, "--unshare-all", "--unshare-user", "--userns-block-fd", str(block_fd), "--info-fd", str(info_fd),
            "--uid", "0", "--gid", "0", "--new-session", "--cap-drop", "ALL",
            *(arg for cap in ZYGOTE_CAPS for arg in ("--cap-add", cap)), "--hostname", "sandbox",
            *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--dir", "/tmp", "--dir", WORKDIR,
            "--remount-ro", "/", "--chdir", "/", "--clearenv",
            *(arg for key, value in env.items() for arg in ("--setenv", key, value)),
            "--", *zygote_command(python, "namespaces")]


class Box(ProcessChannel):
    """A warm bwrap sandbox with its zygote; runs as host uids ``zygote_uid + 1 ..``.

    No ``--die-with-parent`` (the caller's thread that starts a box may end long before it): a
    box ends when its stdin closes (this process gone), and ``close`` kills the box's first
    process, which takes its PID namespace down."""

    def __init__(self, bwrap: str, python: str):
        self.uses, self.zygote_uid = 0, uid_block(RUN_UIDS + 1)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        try:
            super().__init__(box_argv(bwrap, python, block_r, info_w), pass_fds=(info_w, block_r),
                             user=self.zygote_uid, group=self.zygote_uid, extra_groups=[])
        finally:
            os.close(info_w)
            os.close(block_r)
        try:
            pid = _child_pid(info_r)
            self.pidfd = os.pidfd_open(pid)
            mapping = f"0 {self.zygote_uid} 1\n1 {self.zygote_uid + 1} {RUN_UIDS}\n"
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as fh:
                    fh.write(mapping)
            os.write(block_w, b"1")
        except (OSError, SandboxError) as exc:
            self.close()
            raise SandboxError(f"bubblewrap: cannot start a sandbox box: {exc}") from None
        finally:
            os.close(info_r)
            os.close(block_w)

    def close(self) -> None:
        pidfd, self.pidfd = getattr(self, "pidfd", None), None
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                self.proc.wait(timeout=BOX_START_TIMEOUT)  # bwrap reaps it, then exits
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            os.close(pidfd)
        super().close()


def _child_pid(info_fd: int) -> int:
    """The sandbox's first process, from bwrap's --info-fd JSON."""
    deadline, data = time.monotonic() + BOX_START_TIMEOUT, b""
    while True:
        try:
            return int(json.loads(data)["child-pid"])
        except ValueError:
            pass
        left = deadline - time.monotonic()
        chunk = os.read(info_fd, 4096) if left > 0 and select.select([info_fd], [], [], left)[0] else b""
        if not chunk:
            raise SandboxError(f"bwrap said no child pid ({data[:200]!r})")
        data += chunk


@lru_cache(maxsize=4)
def _box_support(bwrap: str, python: str) -> str | None:
    """None where warm boxes can run (one is started and stopped to find out), else why not."""
    if os.getuid() != 0:
        return "mapping a second uid range needs root"
    if platform.machine() not in SYS_KEYCTL:
        return f"no keyctl syscall number known for {platform.machine()}"
    try:
        Box(bwrap, python).close()
    except (OSError, SandboxError) as exc:
        return str(exc)
    return None


@lru_cache(maxsize=1)
def _probe() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (apt-get install bubblewrap, dnf install bubblewrap)"
    cmd = [bwrap, "--unshare-all", "--die-with-parent", *_system_binds(), "--proc", "/proc",
           "--size", "1048576", "--tmpfs", "/tmp", "--", "/bin/true"]
    kwargs = {"user": 65534, "group": 65534, "extra_groups": []} if os.getuid() == 0 else {}
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=20, **kwargs)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap cannot run: {exc}"
    if proc.returncode != 0:
        return (f"bwrap cannot run a sandbox here ({proc.stderr.decode(errors='replace').strip()[:200]}); "
                "it needs bubblewrap >= 0.5 (for --size) and unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0)")
    return None


class BubblewrapBackend(HostBackend):
    """Args:
      python: the interpreter inside the sandbox (under /usr, the only system tree bound).
      warm: warm boxes with a zygote (None: where they can run, which needs root; a warning
        when root cannot start one), or False: a fresh bwrap and interpreter per run.
    """

    name = "bubblewrap"

    def __init__(self, *, python: str = "/usr/bin/python3", warm: bool | None = None):
        why = self.availability()
        if why:
            raise SandboxUnavailable(f"sandbox backend 'bubblewrap' unavailable: {why}")
        if not os.access(python, os.X_OK) or not python.startswith("/usr/"):
            raise SandboxUnavailable(f"sandbox backend 'bubblewrap': the Python inside the sandbox must be an "
                                     f"executable under /usr (the only system tree bound), got {python!r}")
        self.python, self.bwrap = python, shutil.which("bwrap")
        why_not = _box_support(self.bwrap, python) if warm is not False else None
        if why_not and warm:
            raise SandboxUnavailable(f"sandbox backend 'bubblewrap': no warm boxes here ({why_not}); use warm=False")
        if why_not and os.getuid() == 0:
            warnings.warn(f"sandbox backend 'bubblewrap': no warm boxes here ({why_not}); starting a fresh bwrap "
                          "and interpreter per run, which is slower", RuntimeWarning, stacklevel=2)
        self.warm = warm is not False and not why_not
        super().__init__(self._new_box if self.warm else ProcessChannel)

    def _new_box(self) -> Box:
        return Box(self.bwrap, self.python)

    @classmethod
    def availability(cls) -> str | None:
        return _probe()

    def run(self, program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None) -> Execution:
        limits = limits or Limits()
        encoded = check_files(files, program)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return (self._run_in_box if self.warm else self._run_fresh)(encoded, data, limits)

    def _run_fresh(self, encoded: dict[str, str], data: bytes, limits: Limits) -> Execution:
        uid = sandbox_uid()
        argv = bwrap_argv(self.bwrap, limits, [self.python, "-s", PROGRAM_NAME])
        request = request_line(argv=argv, files=encoded, limits=limits, stdin=data, uid=uid, workdir=None,
                               dedicated=False, sandbox_workdir=WORKDIR)
        return execution(parse_answer(self._call(request, limits), self.name), self.name, uid, shell_codes=True)

    def _run_in_box(self, encoded: dict[str, str], data: bytes, limits: Limits) -> Execution:
        box = self._servers.take()
        run_uid = box.uses = box.uses + 1
        try:
            request = request_line(argv=None, files=encoded, limits=limits, stdin=data, uid=run_uid,
                                   workdir=WORKDIR, dedicated=False, tmp_mb=TMP_MB)
            answer = parse_answer(box.call(request, limits.wall_time + self.grace), self.name)
            result = execution(answer, self.name, box.zygote_uid + run_uid)
        except BaseException:
            box.close()
            raise
        clean = result.status == "exit" and result.orphans == 0
        self._servers.give_back(box, reuse=clean and box.uses < RUN_UIDS)
        return result
