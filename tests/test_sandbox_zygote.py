"""The warm zygote (zygote.py): programs behave as under ``python3 main.py``, and no run can reach
the zygote or leave anything (file, process, IPC object, memory) for a later run of the same box."""

from __future__ import annotations

import json
import uuid

import pytest

from rewardgym.sandbox import BubblewrapBackend, Limits
from rewardgym.sandbox.zygote import exit_status

from .sandbox_backends import ISOLATING, backend_params, open_backend

FAST = Limits(wall_time=5.0, cpu_time=5.0, memory_mb=256, output_bytes=64 * 1024, processes=16)
#: A namespace that is the same for every run of one box and differs between boxes.
BOX_NAMESPACE = {"bubblewrap": "user", "docker": "mnt"}
BOX_ID = "import os\nprint(os.readlink('/proc/self/ns/%s'))"


@pytest.fixture(scope="module", params=[*backend_params(), pytest.param("cold", marks=pytest.mark.bwrap,
                                                                     id="bubblewrap-cold")])
def backend(request):
    """Every backend, and bubblewrap without boxes (a fresh bwrap and interpreter per run, as
    when the caller is not root)."""
    if request.param == "cold":
        open_backend("bubblewrap").close()  # skips where bwrap cannot run
        b = BubblewrapBackend(warm=False)
    else:
        b = open_backend(request.param)
    yield b
    b.close()


@pytest.fixture(scope="module", params=backend_params(ISOLATING))
def isolating(request):
    b = open_backend(request.param)
    yield b
    b.close()


def box_id(backend) -> str:
    ex = backend.run(BOX_ID % BOX_NAMESPACE[backend.name], limits=FAST)
    assert ex.ok, ex.stderr
    return ex.stdout


def test_exit_status_of_system_exit(capsys):
    assert [exit_status(SystemExit(code)) for code in (None, 0, 3, 300)] == [0, 0, 3, 300]
    assert exit_status(SystemExit("bye")) == 1
    assert capsys.readouterr().err == "bye\n"


@pytest.mark.parametrize("program, stdout, stderr_end, code", [
    ("import sys\nprint(__name__, sys.argv)", "__main__ ['main.py']\n", "", 0),
    ("import sys\nsys.exit('bye')", "", "bye\n", 1),
    ("import sys\nsys.exit(5)", "", "", 5),
    ("raise KeyboardInterrupt", "", "KeyboardInterrupt\n", -2),
    ("import atexit\natexit.register(print, 'at exit')\nprint('main')", "main\nat exit\n", "", 0),
    ("import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
     "print('main')", "main\nthread\n", "", 0),
    ("out = open(1, 'w')\nout.write('left unflushed')", "left unflushed", "", 0),
], ids=["name-argv", "exit-message", "exit-code", "interrupt", "atexit", "thread-joined", "file-finalised"])
def test_program_ends_as_under_python(backend, program, stdout, stderr_end, code):
    """The same outcome on every backend; ``local`` runs a fresh ``python3 main.py``."""
    ex = backend.run(program, limits=FAST)
    assert (ex.stdout, ex.exit_code) == (stdout, code) and ex.stderr.endswith(stderr_end), ex.stderr


def test_a_run_cannot_signal_ptrace_or_write_the_zygote(isolating):
    program = ("import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\nhits = []\n"
               "for name in os.listdir('/proc'):\n"
               "    if not name.isdigit() or int(name) == os.getpid():\n        continue\n"
               "    pid = int(name)\n"
               "    for sig in (signal.SIGKILL, signal.SIGSTOP):\n"
               "        try:\n            os.kill(pid, sig)\n            hits.append(('kill', pid))\n"
               "        except OSError:\n            pass\n"
               "    if libc.ptrace(16, pid, 0, 0) == 0:\n        hits.append(('ptrace', pid))\n"
               "    try:\n        open(f'/proc/{pid}/mem', 'r+b').close()\n        hits.append(('mem', pid))\n"
               "    except OSError:\n        pass\n"
               "try:\n    os.kill(-1, signal.SIGKILL)  # whatever it reports, the next run shows the effect\n"
               "except OSError:\n    pass\nprint(hits)")
    before = box_id(isolating)
    ex = isolating.run(program, limits=FAST)
    assert ex.ok and ex.stdout == "[]\n", (ex.stdout, ex.stderr)
    after = isolating.run(BOX_ID % BOX_NAMESPACE[isolating.name], limits=FAST)
    assert after.ok and after.stdout == before, "the box was replaced or its zygote harmed"
    assert (after.uid != ex.uid) == (isolating.name == "bubblewrap")  # bubblewrap: a uid per run


def test_files_and_memory_do_not_reach_the_next_run(isolating):
    secret = f"rg-secret-{uuid.uuid4().hex}"
    head, tail = secret[:16], secret[16:]
    leave = ("import os, sys\nsecret = sys.stdin.read()\n"
             "for d in ('.', os.environ['HOME'], '/tmp', '/dev/shm', '/work'):\n"
             "    try:\n        open(os.path.join(d, 'left-behind'), 'w').write(secret)\n"
             "    except OSError:\n        pass\nprint(secret)")
    look = ("import json, os, re, sys\nhead, tail = sys.stdin.read().split()\nfound = []\n"
            "for d in ('.', '/tmp', '/dev/shm', '/work'):\n"
            "    for root, _, names in os.walk(d):\n"
            "        found += [os.path.join(root, n) for n in names if n != 'main.py']\n"
            "hits = 0\n"
            "with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
            "    for line in maps:\n"
            "        lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
            "        if line.split()[1][0] != 'r' or hi - lo > 1 << 30:\n            continue\n"
            "        try:\n            mem.seek(lo)\n            chunk = mem.read(hi - lo)\n"
            "        except OSError:\n            continue\n"
            "        at = chunk.find(head.encode())\n"
            "        while at >= 0:\n"
            "            hits += chunk[at + len(head):at + len(head) + len(tail)] == tail.encode()\n"
            "            at = chunk.find(head.encode(), at + 1)\n"
            "print(json.dumps({'files': found, 'secret_in_memory': hits}))")
    before = box_id(isolating)
    first = isolating.run(leave, stdin=secret, limits=FAST)
    assert first.ok and first.stdout == secret + "\n"
    second = isolating.run(look, stdin=f"{head} {tail}", limits=FAST)
    assert second.ok, second.stderr
    assert json.loads(second.stdout) == {"files": [], "secret_in_memory": 0}
    assert box_id(isolating) == before  # the same box: what was left was removed, not the box


def leave_then_look(sandbox, leave: str, look: str) -> str:
    """Run ``leave`` (which prints 'left'), then ``look`` in the same sandbox; look's stdout."""
    first = sandbox.run(leave, limits=FAST)
    assert first.ok and first.stdout == "left\n", first.stderr
    second = sandbox.run(look, limits=FAST)
    assert second.ok, second.stderr
    return second.stdout


def test_ipc_objects_do_not_reach_the_next_run(isolating):
    leave = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
             "assert libc.shmget(0x52470001, 4096, 0o1666) >= 0\n"
             "assert libc.mq_open(b'/rg-left', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0\nprint('left')")
    look = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.shmget(0x52470001, 0, 0), libc.mq_open(b'/rg-left', os.O_RDWR))")
    assert leave_then_look(isolating, leave, look) == "-1 -1\n"


def test_processes_do_not_reach_the_next_run(isolating):
    leave = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
             "    os._exit(0)\nprint('left')")
    look = ("import os\nprint([p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()\n"
            "       and os.stat(f'/proc/{p}').st_uid == os.getuid()])")
    assert leave_then_look(isolating, leave, look) == "[]\n"
