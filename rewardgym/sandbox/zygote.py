"""The warm zygote inside a sandbox: a fork per run instead of a new Python (standard library only).

Starting an interpreter costs more than most sandboxed programs, so each bubblewrap box and
each docker container keeps one zygote, ``python3 -s`` with nothing but the standard library
imported. The zygote never reads a request: it forks a *leader* and waits for it. The leader
reads one request from the shared stdin, prepares the run, forks the program's process,
supervises it (supervisor.py) and answers on stdout, then dies, and the zygote forks the next
one. The program's process drops to the run's uid and limits, and only then compiles the
submission and runs it as ``__main__`` in the forked interpreter, ending as ``python3 main.py``
would (exit status, traceback, threads, atexit, flushing; see run_program).

What keeps one run from touching the zygote or a later run:
- no request or answer ever enters the zygote's memory, so a program inherits only its own run;
- the program runs as a uid that is not the zygote's and has no capabilities, so it cannot
  signal, ptrace or write the zygote or its leader (bubblewrap: uid k of the box's user
  namespace, a different one, hence a different host uid, for each run of a box; docker: the
  container's uid, while the zygote is root);
- bubblewrap (``mode="namespaces"``): each run gets new mount, PID and IPC namespaces: fresh
  size-limited tmpfs for /work, /tmp and /dev/shm (nothing else is writable), its own /proc
  (the zygote and the leader are not in it), its own SysV IPC and a new session keyring. Its
  PID namespace's init (a fork of the leader) exits when the program does, and the kernel then
  kills everything the run left;
- docker (``mode="container"``): what the run leaves is killed by uid, /work, /tmp, /dev/shm and
  /dev/mqueue are emptied, and the answer says ``residue`` when SysV IPC objects or files
  remain, so the backend replaces the container;
- the backends replace a box after any run that hit a limit or left processes, and after a
  fixed number of runs.

Shipped by ``script()``: the host sends this file and supervisor.py as sources, loaded as the
modules ``zygote`` and ``supervisor`` (hence the fall-back import below).
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import gc
import importlib.machinery
import io
import json
import os
import platform
import resource
import signal
import sys
import time
import types

try:
    from .supervisor import Run, limit_self, read_exactly, result, supervise, write_all, write_workdir
except ImportError:  # loaded by script(): supervisor.py is a top-level module there
    from supervisor import Run, limit_self, read_exactly, result, supervise, write_all, write_workdir

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 47, 4
KEYCTL_JOIN_SESSION_KEYRING = 1
#: keyctl(2) has no libc wrapper: its syscall number on the architectures where bubblewrap boxes
#: run (elsewhere the bubblewrap backend starts a fresh bwrap per run instead).
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 311, "s390x": 280}
PROGRAM = "main.py"
SHARED_TMPFS = ("/tmp", "/dev/shm")
CONTAINER_WIPE = ["/work", "/tmp", "/dev/shm", "/dev/mqueue"]
_libc = ctypes.CDLL(None, use_errno=True)


class Program(BaseException):
    """Raised in the program's process to unwind out of the zygote's frames and run it."""

    def __init__(self, request: dict):
        super().__init__()
        self.request = request


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, options: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       options.encode() if options else None), f"mount {target}")


# -- the program's process --------------------------------------------------------------------
def _become(request: dict, stdio: tuple[int, int, int], *, box: bool) -> None:
    """In the forked program process: its own session, the pipes as stdio, no other descriptor,
    no capability, the run's uid and rlimits. Then unwind (Program) to run the submission.
    ``box``: in a bubblewrap box, also empty the capability bounding set and join a new session
    keyring (the inherited one would be shared by every run)."""
    try:
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, 1 << 20)
        if box:
            with open("/proc/sys/kernel/cap_last_cap") as fh:
                last_cap = int(fh.read())
            for cap in range(last_cap + 1):
                _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability")
            keyring = _libc.syscall(SYS_KEYCTL[platform.machine()], KEYCTL_JOIN_SESSION_KEYRING, None)
            _check(min(keyring, 0), "join a new session keyring")
        _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        uid, gid = request["uid"], request["gid"]
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # the last capabilities go with root
        limit_self(request["limits"])
        _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as after an exec: its own processes may debug it
        os.chdir(request["workdir"])
        os.environ.clear()
        os.environ.update(request["env"], HOME=request["workdir"])
    except BaseException as exc:  # noqa: BLE001 - report why the start failed, then die
        os.write(2, f"sandbox: cannot start the program: {exc}\n".encode())
        os._exit(127)
    raise Program(request)


def _stdio() -> None:
    """New sys.stdin/stdout/stderr on descriptors 0-2, configured like the interpreter's own."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        old = getattr(sys, name)
        unbuffered = fd > 0 and old.write_through
        buffer = io.open(fd, "rb" if fd == 0 else "wb", buffering=0 if unbuffered else -1, closefd=False)
        stream = io.TextIOWrapper(buffer, encoding=old.encoding, errors=old.errors, newline="\n",
                                  line_buffering=old.line_buffering, write_through=old.write_through)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _program_frames_only(path: str):
    """sys.excepthook that leaves the zygote's frames out of an uncaught exception's traceback."""
    def hook(kind, value, tb):
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        sys.__excepthook__(kind, value if value is None else value.with_traceback(tb), tb)
    return hook


def exit_status(exc: SystemExit) -> int:
    """The process status ``python3`` exits with for an uncaught SystemExit (printing a
    non-integer code to stderr, as it does)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _shut_down(main: types.ModuleType, status: int) -> int:
    """The parts of the interpreter's exit a program can observe: join non-daemon threads, run
    atexit functions, finalise ``__main__``'s objects (closing and flushing files it left open),
    collect cycles, flush stdio (status 120 if stdout cannot be flushed). Tearing down every
    module, which costs more than most programs, is skipped: the process ends right after."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit._run_exitfuncs()
    for name in [name for name in main.__dict__ if name != "__builtins__"]:
        main.__dict__[name] = None
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - as the interpreter: a failed stdout flush is status 120
            status = 120 if stream is sys.stdout else status
    return status


def run_program(request: dict) -> None:
    """Run main.py as ``python3 -s main.py`` would in the work dir, then end the process with
    its exit status (uncaught exceptions reported through sys.excepthook, as the interpreter does)."""
    path = os.path.join(request["workdir"], PROGRAM)
    with open(path, "rb") as fh:
        source = fh.read()
    _stdio()
    atexit._clear()
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __builtins__=builtins,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    sys.argv = [PROGRAM]
    sys.path[0] = request["workdir"]
    sys.excepthook = _program_frames_only(path)
    interrupted = False
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
        status = 0
    except SystemExit as exc:
        status = exit_status(exc)
    except BaseException as exc:  # noqa: BLE001 - reported as the interpreter would
        sys.excepthook(type(exc), exc, exc.__traceback__)
        status, interrupted = 1, isinstance(exc, KeyboardInterrupt)
    status = _shut_down(main, status)
    if interrupted:  # the interpreter ends an uncaught KeyboardInterrupt by dying of SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status & 0xFF)


# -- bubblewrap: fresh namespaces per run ------------------------------------------------------
def _fresh_mounts(request: dict) -> None:
    """In the leader's new mount namespace: new tmpfs for the work dir and the shared temp dirs."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    flags = MS_NOSUID | MS_NODEV
    _mount("tmpfs", request["workdir"], "tmpfs", flags, f"size={int(request['limits']['work_mb'])}m,mode=0700")
    for path in SHARED_TMPFS:
        _mount("tmpfs", path, "tmpfs", flags, f"size={int(request['tmp_mb'])}m,mode=1777")


def _init(request: dict, stdio: tuple[int, int, int], report: int) -> None:
    """PID 1 of the run's namespace: start the program, reap, and when the program ends, say how
    it ended and how many processes it left, and exit (the kernel kills those)."""
    try:
        for fd in os.listdir("/proc/self/fd"):  # the leader's pipe ends, the zygote's done pipe
            if int(fd) > 2 and int(fd) not in (*stdio, report):
                try:
                    os.close(int(fd))
                except OSError:
                    pass
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        child = os.fork()
        if child == 0:
            _become(request, stdio, box=True)
        for fd in stdio:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as init, ignore what the program sends
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == child:
                break
        write_all(report, json.dumps({"status": status, "orphans": _live_others()}).encode())
    except Exception as exc:  # noqa: BLE001 - the leader reports it
        write_all(report, json.dumps({"error": f"run init failed: {exc}"}).encode())
    os._exit(0)


def _reap() -> None:
    """Collect the children that have exited, without waiting for any other."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _live_others() -> int:
    """Processes other than this init still alive in its PID namespace (zombies reaped first)."""
    _reap()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != "1":
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    count += fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
            except OSError:
                pass
    return count


def _lead_in_namespaces(request: dict, data: bytes) -> dict:
    """Run one request in new mount, PID and IPC namespaces; killing their init ends the run."""
    start = time.monotonic()
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    _fresh_mounts(request)
    write_workdir(request, create=False)
    (in_r, in_w), (out_r, out_w), (err_r, err_w), (rep_r, rep_w) = os.pipe(), os.pipe(), os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        _init(request, (in_r, out_w, err_w), rep_w)
    for fd in (in_r, out_w, err_w, rep_w):
        os.close(fd)
    run = Run(pid, request["limits"], start, group=False)
    run.pump(in_w, out_r, err_r, data)
    status = run.finish()
    wall = time.monotonic() - start
    with os.fdopen(rep_r, "rb") as fh:
        report = json.loads(fh.read() or b"{}")
    if "error" in report:
        return report
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result(run, report.get("status", status), wall, usage, report.get("orphans", 0))


# -- docker: the container's uid, cleaned after each run ---------------------------------------
def _fork_program(request: dict) -> tuple[int, int, int, int]:
    """supervisor.supervise's spawn: the program's process forked from this leader, not exec'd."""
    write_workdir(request)
    (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        _become(request, (in_r, out_w, err_w), box=False)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    return pid, in_w, out_r, err_r


def _residue() -> bool:
    """Anything a run could leave for the next that the wipe did not remove."""
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                if len(fh.read().splitlines()) > 1:
                    return True
        except OSError:
            pass
    return any(os.path.isdir(path) and os.listdir(path) for path in CONTAINER_WIPE)


def _lead_in_container(request: dict, data: bytes) -> dict:
    """Run one request as the container's uid; empty the writable tmpfs afterwards."""
    answer = supervise(dict(request, wipe=CONTAINER_WIPE), data, spawn=_fork_program)
    answer["residue"] = _residue()
    return answer


# -- the zygote ---------------------------------------------------------------------------------
LEADERS = {"namespaces": _lead_in_namespaces, "container": _lead_in_container}


def _lead(mode: str, done: int) -> None:
    """One leader: read one request, run it, answer, exit (the program's process unwinds instead).
    Closing ``done`` tells the zygote it may fork the next leader: the stream is free, and this
    one's exit (tearing its namespaces down) need not delay the next run. It says ``eof`` first
    when the stream has ended."""
    stream = sys.stdin.buffer
    line = stream.readline()
    if not line:
        os.write(done, b"eof")
        os._exit(0)
    try:
        request = json.loads(line)
        data = read_exactly(stream, int(request["stdin_len"]))
        answer = LEADERS[mode](request, data)
    except Exception as exc:  # noqa: BLE001 - the host turns this into a SandboxError
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    write_all(1, (json.dumps(answer) + "\n").encode())
    os.close(done)
    os._exit(0)


def serve(mode: str) -> dict:
    """Fork a leader per request until stdin closes; returns only in a program's process."""
    if mode not in LEADERS:
        raise SystemExit(f"zygote: unknown mode {mode!r}")
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # nothing of a lower uid may ptrace or read it
    gc.freeze()  # the collector of a fork then leaves the zygote's objects (and their pages) alone
    while True:
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(done_r)
            try:
                _lead(mode, done_w)
            except Program as become:
                return become.request
        os.close(done_w)
        with os.fdopen(done_r, "rb") as fh:
            said = fh.read()  # returns when the leader has answered (or died)
        _reap()
        if said == b"eof":
            raise SystemExit(0)


def main(mode: str) -> None:
    run_program(serve(mode))
