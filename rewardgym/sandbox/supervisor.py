"""The process that runs one untrusted program and cleans up after it (standard library only).

It runs on the host for ``local`` and fresh-per-run ``bubblewrap`` (``serve``), and inside
bubblewrap boxes and docker containers under the zygote (base.zygote_command sends this
source with zygote.py's), so it must stay importable on any Python >= 3.8 with nothing but
the standard library.

Protocol (``serve``): each request on stdin is one JSON line followed by exactly ``stdin_len``
bytes of the program's stdin; each answer on stdout is one JSON line (the result, or
``{"error": ...}``). One server handles one request at a time.

Why a separate process: it becomes a child subreaper, so every process the program leaves
behind (daemonised children, fork-bomb survivors) is re-parented to it and can be killed and
reaped here instead of lingering as a zombie under the machine's init, where it would keep
counting against the sandbox uid's process limit. When the run has a dedicated uid it also
kills everything of that uid (``kill(-1)`` as that uid) before returning.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import selectors
import shutil
import signal
import sys
import time
from typing import Callable, Tuple

PR_SET_CHILD_SUBREAPER = 36
FILES_MARK = "@FILES@"
MB = 1 << 20


def subreaper() -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def limit_self(limits: dict) -> None:
    """Runs in the child between fork and exec, after the switch to the sandbox uid."""
    cpu = max(1, int(limits["cpu_time"] + 0.999))
    memory = int(limits["memory_mb"]) * MB
    for what, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                        (resource.RLIMIT_AS, (memory, memory)),
                        (resource.RLIMIT_DATA, (memory, memory)),
                        (resource.RLIMIT_FSIZE, (int(limits["file_size_mb"]) * MB,) * 2),
                        (resource.RLIMIT_NOFILE, (int(limits["open_files"]),) * 2),
                        (resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2),
                        (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(what, value)


def write_workdir(request: dict, *, create: bool = True) -> None:
    """Write the run's files into its work dir (created here unless it is a fresh mount), owned
    by the run's uid."""
    workdir, uid, gid = request["workdir"], request.get("uid"), request.get("gid")
    if create:
        os.makedirs(workdir, mode=0o700)
    for name, data in request["files"].items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))
    if uid is not None and os.getuid() == 0:  # bottom-up: root may lack CAP_DAC_OVERRIDE
        for root, _, names in os.walk(workdir, topdown=False):
            for name in names + [""]:
                os.chown(os.path.join(root, name) if name else root, uid, gid)


def _prepare_files(request: dict) -> tuple[list[str], list[int]]:
    """Write the files into the fresh work dir, or (bubblewrap) hand them over as memfds."""
    argv, files = list(request["argv"]), request["files"]
    fds: list[int] = []
    if request.get("workdir"):
        write_workdir(request)
    if FILES_MARK in argv:
        extra: list[str] = []
        made: set[str] = set()
        for name, data in files.items():
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub not in made:
                    made.add(sub)
                    extra += ["--dir", f"{request['sandbox_workdir']}/{sub}"]
            fd = os.memfd_create(name.replace("/", "_"), 0)
            os.write(fd, base64.b64decode(data))
            os.lseek(fd, 0, os.SEEK_SET)
            fds.append(fd)
            extra += ["--file", str(fd), f"{request['sandbox_workdir']}/{name}"]
        i = argv.index(FILES_MARK)
        argv[i:i + 1] = extra
    return argv, fds


def _spawn_exec(request: dict) -> tuple[int, int, int, int]:
    """fork/exec ``argv`` by hand: new session, sandbox uid, rlimits; pipes for stdio.

    Returns (pid, stdin writer, stdout reader, stderr reader). Every other descriptor of this
    process is close-on-exec (Python's default), so only stdio and the memfds are inherited.
    """
    argv, fds = _prepare_files(request)
    limits, uid, gid = request["limits"], request.get("uid"), request.get("gid")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    for fd in fds:
        os.set_inheritable(fd, True)
    exe = shutil.which(argv[0], path=request["env"].get("PATH")) or argv[0]
    pid = os.fork()
    if pid == 0:  # child: set up and exec, never return
        try:
            os.setsid()
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            if uid is not None and os.getuid() == 0:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
            limit_self(limits)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; exec'd code gets defaults
                signal.signal(sig, signal.SIG_DFL)
            if request.get("workdir"):
                os.chdir(request["workdir"])
            os.execve(exe, argv, request["env"])
        except BaseException as exc:  # noqa: BLE001 - report why exec failed, then die
            os.write(2, f"sandbox: cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)
    for fd in [in_r, out_w, err_w] + fds:
        os.close(fd)
    return pid, in_w, out_r, err_r


class Run:
    """Stdio pumping and waiting for one program; ``stop`` says why it was cut short.
    ``group``: the program leads its own process group, which is what gets killed (else
    just ``pid``, a PID namespace's init whose death takes the namespace down)."""

    def __init__(self, pid: int, limits: dict, start: float, *, group: bool = True):
        self.pid, self.cap, self.group = pid, int(limits["output_bytes"]), group
        self.deadline = start + float(limits["wall_time"])
        self.out, self.err = bytearray(), bytearray()
        self.stop: str | None = None
        self.status: int | None = None

    def _read(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        chunk = os.read(key.fd, 65536)
        if not chunk:
            sel.unregister(key.fd)
            os.close(key.fd)
            return
        key.data.extend(chunk)
        if len(key.data) > self.cap:
            del key.data[self.cap:]
            self.stop = "output_limit"

    def _exited(self) -> bool:
        if self.status is None:
            done, status, _ = os.wait4(self.pid, os.WNOHANG)
            if done == self.pid:
                self.status = status
        return self.status is not None

    def pump(self, in_w: int, out_r: int, err_r: int, data: bytes) -> None:
        """Feed stdin, collect capped output; return once the program has exited and its
        pipes are drained, or a limit is hit. Sleeps in select only: the program's exit wakes
        it through a pidfd (polled every few ms where there is none)."""
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, self.out)
        sel.register(err_r, selectors.EVENT_READ, self.err)
        exit_fd = _pidfd(self.pid)
        if exit_fd is not None:
            sel.register(exit_fd, selectors.EVENT_READ)
        sent = 0
        if data:
            os.set_blocking(in_w, False)
            sel.register(in_w, selectors.EVENT_WRITE)
        else:
            os.close(in_w)
        while not self.stop:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.stop = "timeout"
                break
            exited = self._exited()
            if exited and exit_fd is not None and exit_fd in sel.get_map():
                sel.unregister(exit_fd)
            readers = [k for k in sel.get_map().values() if k.fd in (out_r, err_r)]
            if not readers and exited:
                break
            if not sel.get_map():  # output closed, stdin sent, no pidfd: poll for the exit
                time.sleep(0.002)
                continue
            events = sel.select(0 if exited else min(left, 0.05 if exit_fd is None else left))
            if exited and not events:
                break  # a leftover child may hold the pipes open; the program is done
            for key, _ in events:
                if key.fd in (out_r, err_r):
                    self._read(sel, key)
                elif key.fd == in_w:
                    sent = self._feed(sel, in_w, data, sent)
        if exit_fd is not None:
            os.close(exit_fd)
        for key in list(sel.get_map().values()):
            if key.fd != exit_fd:
                os.close(key.fd)
        sel.close()

    @staticmethod
    def _feed(sel: selectors.BaseSelector, in_w: int, data: bytes, sent: int) -> int:
        try:
            sent += os.write(in_w, data[sent:sent + 65536])
        except BlockingIOError:
            pass
        except BrokenPipeError:
            sent = len(data)
        if sent >= len(data):
            sel.unregister(in_w)
            os.close(in_w)
        return sent

    def finish(self) -> int:
        """The program's wait status, killing its process group first if it still runs."""
        if not self._exited():
            self.stop = self.stop or "timeout"
            try:
                (os.killpg if self.group else os.kill)(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, self.status, _ = os.wait4(self.pid, 0)
        return self.status


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (None before Python 3.9 / Linux 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` at once (kill(-1) as that uid): fast against fork bombs.
    Its return value is not trusted (some kernels report success with nothing signalled)."""
    if os.getuid() == uid:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:  # noqa: BLE001 - nothing to kill
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _leftovers(uid: int | None) -> dict[int, bool]:
    """Processes left by the program: children of this process (orphans are re-parented here)
    and, with a dedicated uid, every process of that uid. Maps pid to "is a zombie"."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as fh:
                fields = dict(line.split(b":", 1) for line in fh.read().splitlines() if b":" in line)
        except OSError:
            continue
        ppid, real_uid = int(fields[b"PPid"]), int(fields[b"Uid"].split()[0])
        if ppid == me or (uid is not None and real_uid == uid):
            found[int(entry)] = fields[b"State"].strip().startswith(b"Z")
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep(request: dict) -> int:
    """Kill and reap everything the program left behind; returns how many live processes that was."""
    uid = request.get("uid") if request.get("dedicated") else None
    live: set[int] = set()
    for _ in range(1000):
        _reap()
        left = _leftovers(uid)
        if not left:
            break
        live.update(pid for pid, zombie in left.items() if not zombie)
        if uid is not None:
            _kill_uid(uid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)
    return len(live)


def _open_up(path: str) -> None:
    """chmod 700 every directory below ``path`` (the program may have locked some), top-down."""
    try:
        os.chmod(path, 0o700)
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                _open_up(entry.path)
    except OSError:
        pass


def _remove(paths: list[str], uid: int | None, *, keep_top: bool) -> None:
    """Delete ``paths`` (or, with ``keep_top``, everything inside them) as their owner: root may
    lack CAP_DAC_OVERRIDE in a container."""
    def wipe() -> None:
        for path in paths:
            _open_up(path)
            targets = [entry.path for entry in os.scandir(path)] if keep_top and os.path.isdir(path) else [path]
            for target in targets:
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    try:
                        os.unlink(target)
                    except OSError:
                        pass

    if uid is None or os.getuid() != 0:
        wipe()
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            wipe()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


Spawn = Callable[[dict], Tuple[int, int, int, int]]


def supervise(request: dict, data: bytes, spawn: Spawn = _spawn_exec) -> dict:
    """Run one request: ``spawn`` starts the program (pid and its stdin/stdout/stderr pipe
    ends), this pumps, kills, sweeps and cleans up. ``request["wipe"]``: directories emptied
    after the run instead of removing just the work dir (a warm container's shared tmpfs)."""
    subreaper()
    start = time.monotonic()
    pid, in_w, out_r, err_r = spawn(request)
    run = Run(pid, request["limits"], start)
    run.pump(in_w, out_r, err_r, data)
    status = run.finish()
    wall = time.monotonic() - start
    orphans = _sweep(request)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if request.get("wipe"):
        _remove(request["wipe"], request.get("uid"), keep_top=True)
    elif request.get("workdir"):
        _remove([request["workdir"]], request.get("uid"), keep_top=False)
    return result(run, status, wall, usage, orphans)


def result(run: Run, status: int, wall: float, usage: resource.struct_rusage, orphans: int) -> dict:
    """The answer line's fields (see base.execution)."""
    return {"stdout": base64.b64encode(run.out).decode(), "stderr": base64.b64encode(run.err).decode(),
            "exit_code": os.waitstatus_to_exitcode(status), "stop": run.stop, "wall_time": wall,
            "cpu_time": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss,
            "orphans": orphans}


def read_exactly(stream, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = stream.read(min(size, 1 << 20))
        if not chunk:
            raise EOFError("request ended early")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def serve() -> None:
    """Answer requests one after another until stdin closes. Each request runs in a forked
    child (a fresh supervisor, so nothing carries over between runs); a warm server saves a
    Python start-up per run."""
    stream = sys.stdin.buffer
    while True:
        line = stream.readline()
        if not line:
            return
        request = json.loads(line)
        data = read_exactly(stream, int(request["stdin_len"]))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                write_all(write_end, (json.dumps(supervise(request, data)) + "\n").encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as fh:
            answer = fh.read()
        _, status = os.waitpid(pid, 0)
        if not answer.endswith(b"\n"):
            answer = (json.dumps({"error": f"supervisor died (status {status})"}) + "\n").encode()
        write_all(1, answer)


if __name__ == "__main__":
    serve()
