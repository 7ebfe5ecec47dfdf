"""The sandbox interface on every available backend: ordinary runs, limits, and hostile programs.

Hostile programs only aim at this machine: the network test opens a listener on the host's
127.0.0.1 and checks the sandbox cannot reach it. After each hostile run, no process of it may
be left and nothing outside its work dir may have changed (a witness dir on the host).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from rewardgym import sandbox
from rewardgym.sandbox import Limits, SandboxUnavailable

from .sandbox_backends import ISOLATING, assert_nothing_left, backend_params, open_backend

FAST = Limits(wall_time=3.0, cpu_time=3.0, memory_mb=256, output_bytes=64 * 1024, processes=16)


@pytest.fixture(scope="module", params=backend_params())
def backend(request):
    b = open_backend(request.param)
    yield b
    b.close()


@pytest.fixture
def witness(tmp_path: Path):
    """A host dir outside any work dir, with a file; the test fails if either changes."""
    (tmp_path / "secret.txt").write_text("host secret 7f3a\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "secret.txt", 0o644)  # readable by any uid: only isolation can hide it
    token = uuid.uuid4().hex

    def snapshot():
        return sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in tmp_path.iterdir())

    before = snapshot()
    yield tmp_path, token
    assert snapshot() == before, "the host witness dir changed"
    assert not Path(f"/tmp/rg-escape-{token}").exists(), "the program wrote into the host's /tmp"


def isolating_only(backend):
    if backend.name not in ISOLATING:
        pytest.skip(f"the {backend.name!r} backend does not isolate files or network (by design)")


# -- ordinary behaviour ------------------------------------------------------------------
def test_stdin_stdout_files_and_exit_code(backend):
    program = "import sys, helper\nprint(helper.twice(sys.stdin.read().strip()))\nsys.exit(3)"
    ex = backend.run(program, stdin="ab\n", files={"helper.py": "def twice(s):\n    return s * 2\n"}, limits=FAST)
    assert (ex.stdout, ex.exit_code, ex.status, ex.ok) == ("abab\n", 3, "exit", False)
    assert ex.backend == backend.name


def test_runtime_error_reports_stderr(backend):
    ex = backend.run("raise ValueError('boom')", limits=FAST)
    assert ex.status == "exit" and ex.exit_code == 1 and "ValueError: boom" in ex.stderr


def test_files_in_subdirectories(backend):
    ex = backend.run("print(open('data/x.txt').read())", files={"data/x.txt": b"payload"}, limits=FAST)
    assert ex.ok and ex.stdout == "payload\n"


def test_bad_file_names_are_refused(backend):
    for name in ("/etc/x", "../x", "main.py", "a/../../x"):
        with pytest.raises(ValueError, match="relative path"):
            backend.run("pass", files={name: "x"}, limits=FAST)


def test_limits_are_validated():
    with pytest.raises(ValueError, match="positive"):
        Limits(wall_time=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=8)


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown sandbox backend 'nope'"):
        sandbox.get_backend("nope")


def test_auto_never_falls_back_to_local(monkeypatch):
    for name in ("bubblewrap", "docker"):
        monkeypatch.setattr(sandbox.BACKENDS[name], "availability", classmethod(lambda cls: "not here"))
    with pytest.raises(SandboxUnavailable, match="bubblewrap: not here") as info:
        sandbox.get_backend("auto")
    assert "docker: not here" in str(info.value)


def test_local_warns_that_it_does_not_isolate():
    with pytest.warns(RuntimeWarning, match="does not isolate"):
        sandbox.LocalBackend()


# -- hostile programs ----------------------------------------------------------------------
def test_infinite_loop_is_killed(backend, witness):
    ex = backend.run("while True:\n    pass", limits=Limits(wall_time=1.5, cpu_time=10))
    assert ex.status == "timeout" and not ex.ok
    assert_nothing_left(ex)


def test_cpu_limit(backend, witness):
    ex = backend.run("while True:\n    pass", limits=Limits(wall_time=10, cpu_time=1))
    assert ex.status == "timeout"
    assert_nothing_left(ex)


def test_fork_bomb_is_contained(backend, witness):
    program = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    ex = backend.run(program, limits=FAST)
    assert ex.status in ("timeout", "exit", "killed") and not ex.ok
    assert_nothing_left(ex)
    assert backend.run("print('after')", limits=FAST).stdout == "after\n"


def test_memory_bomb_is_contained(backend, witness):
    ex = backend.run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 << 20))", limits=FAST)
    assert ex.status == "memory" and ex.peak_memory_mb < FAST.memory_mb + 64
    assert_nothing_left(ex)


def test_gigabyte_to_stdout_is_capped(backend, witness):
    program = "import sys\nblock = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(block)"
    ex = backend.run(program, limits=FAST)
    assert ex.status == "output_limit" and len(ex.stdout) == FAST.output_bytes
    assert_nothing_left(ex)


def test_huge_file_in_work_dir_is_bounded(backend, witness):
    ex = backend.run("open('big', 'wb').write(b'x' * (64 << 20))", limits=Limits(wall_time=5, file_size_mb=4))
    assert ex.exit_code != 0 and ("File too large" in ex.stderr or "No space" in ex.stderr)
    assert_nothing_left(ex)


def test_writes_outside_the_work_dir_fail(backend, witness):
    isolating_only(backend)
    host_dir, token = witness
    targets = [f"/tmp/rg-escape-{token}", str(host_dir / "planted.txt"), str(host_dir / "secret.txt"),
               "/usr/rg-planted", "/etc/rg-planted", "/rg-planted", "/root/rg-planted"]
    program = ("import os\nfor path in %r:\n    try:\n        open(path, 'w').write('pwned')\n"
               "        print('wrote', path)\n    except OSError:\n        pass\n"
               "open('inside.txt', 'w').write('fine')\nprint('inside ok')" % targets)
    ex = backend.run(program, limits=FAST)
    assert ex.stdout.splitlines() in (["inside ok"], [f"wrote /tmp/rg-escape-{token}", "inside ok"])
    for path in targets[1:]:
        assert not Path(path).exists() or path.endswith("secret.txt")
    assert_nothing_left(ex)


def test_host_files_outside_the_binds_are_unreadable(backend, witness):
    isolating_only(backend)
    host_dir, _ = witness
    program = ("import os\nfor path in %r:\n    try:\n        print(open(path).read())\n"
               "    except OSError:\n        pass\nprint(sorted(os.listdir('/')))" % [str(host_dir / "secret.txt"),
                                                                             "/etc/shadow", "/root/.bashrc"])
    ex = backend.run(program, limits=FAST)
    assert ex.ok and "host secret" not in ex.stdout and "root:" not in ex.stdout
    assert "root" not in eval(ex.stdout.splitlines()[-1]) or backend.name == "docker"
    assert_nothing_left(ex)


def test_network_is_unreachable(backend, witness):
    isolating_only(backend)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted, done = [], threading.Event()

    def accept():
        while not done.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    program = ("import socket\nprint(sorted(name for _, name in socket.if_nameindex()))\n"
               "s = socket.socket()\ns.settimeout(1)\n"
               f"try:\n    s.connect(('127.0.0.1', {port}))\n    print('connected')\n"
               "except OSError as exc:\n    print('refused')")
    try:
        ex = backend.run(program, limits=FAST)
    finally:
        done.set()
        thread.join()
        listener.close()
    assert ex.ok and ex.stdout.splitlines() == ["['lo']", "refused"]
    assert accepted == []
    assert_nothing_left(ex)


def test_killing_the_parent_does_not_break_the_sandbox(backend, witness):
    program = ("import os, signal\nfor target in (os.getppid(), -1, 1):\n    try:\n"
               "        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\nprint('still here')")
    ex = backend.run(program, limits=FAST)
    assert ex.status in ("exit", "killed")
    assert_nothing_left(ex)
    assert backend.run("print('next')", limits=FAST).stdout == "next\n"


def test_daemonised_children_are_killed(backend, witness):
    # the parent waits for the middle process, so the daemon exists before the program ends
    program = ("import os, sys, time\nchild = os.fork()\nif child == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
               "        sys.stdout.close(); sys.stderr.close()\n        time.sleep(60)\n    os._exit(0)\n"
               "os.waitpid(child, 0)\nprint('parent done')")
    ex = backend.run(program, limits=FAST)
    assert ex.ok and ex.stdout == "parent done\n"
    # bubblewrap: the PID namespace dies with the program, so the kernel kills the daemon first
    assert ex.orphans >= 1 or backend.name == "bubblewrap"
    assert_nothing_left(ex)


def test_child_holding_stdout_does_not_stall_the_run(backend, witness):
    program = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint('parent done')"
    ex = backend.run(program, limits=Limits(wall_time=20))
    assert ex.ok and ex.stdout == "parent done\n"  # not a 20 s timeout: the run ends with its program
    assert_nothing_left(ex)


def test_huge_stdin_and_argv(backend, witness):
    ex = backend.run("import sys\nprint(len(sys.stdin.buffer.read()))", stdin=b"y" * (16 << 20), limits=FAST)
    assert ex.ok and ex.stdout == f"{16 << 20}\n"
    program = ("import subprocess, sys\ntry:\n    subprocess.run([sys.executable, '-c', 'pass'] + ['a' * 100000] * 1000)\n"
               "except OSError as exc:\n    print(type(exc).__name__)")
    ex = backend.run(program, limits=FAST)
    assert ex.ok and ex.stdout.strip() in ("OSError", "MemoryError")
    assert_nothing_left(ex)
