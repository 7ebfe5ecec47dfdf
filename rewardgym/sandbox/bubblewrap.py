"""The ``bubblewrap`` backend: Linux namespaces through ``bwrap``; the default where it works.

Each run gets new user, PID, network, IPC, UTS and cgroup namespaces (so no interface but
loopback), a read-only view of /usr (and the /bin, /lib symlinks or binds), no /etc, /home or
/root, a private size-limited tmpfs for /work (the files and the program, written through
memfds) and /tmp, and a read-only root. The supervisor (see supervisor.py) runs bwrap as an
unprivileged uid of its own when the caller is root, with rlimits, the wall-clock kill and
the clean-up. ``--die-with-parent`` takes the whole PID namespace down with bwrap, and nothing
can leave that namespace, so the clean-up needs no host-wide search for the uid's processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from typing import Mapping

from .base import PROGRAM_NAME, Execution, Limits, SandboxUnavailable, check_files, execution, \
    request_line, sandbox_uid
from .channel import HostBackend

WORKDIR = "/work"
TMP_MB = 16
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
    name = "bubblewrap"

    def __init__(self, *, python: str = "/usr/bin/python3"):
        why = self.availability()
        if why:
            raise SandboxUnavailable(f"sandbox backend 'bubblewrap' unavailable: {why}")
        if not os.access(python, os.X_OK) or not python.startswith("/usr/"):
            raise SandboxUnavailable(f"sandbox backend 'bubblewrap': the Python inside the sandbox must be an "
                                     f"executable under /usr (the only system tree bound), got {python!r}")
        super().__init__()
        self.python, self.bwrap = python, shutil.which("bwrap")

    @classmethod
    def availability(cls) -> str | None:
        return _probe()

    def run(self, program: str, *, stdin: str | bytes = b"", files: Mapping[str, str | bytes] | None = None,
            limits: Limits | None = None) -> Execution:
        limits = limits or Limits()
        encoded, uid = check_files(files, program), sandbox_uid()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        argv = bwrap_argv(self.bwrap, limits, [self.python, "-s", PROGRAM_NAME])
        request = request_line(argv=argv, files=encoded, limits=limits, stdin=data, uid=uid, workdir=None,
                               dedicated=False, sandbox_workdir=WORKDIR)
        return execution(self._call(request, limits), self.name, uid, shell_codes=True)
