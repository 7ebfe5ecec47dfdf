"""The killable worker pool: deadlines, crashes, threads, ordering and clean shutdown.

One module-scoped pool serves most tests (worker start-up is the slow part); tests that
kill workers check the pool keeps serving afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from rewardgym.core.workers import CRASHED, ERROR, OK, TIMEOUT, WorkerPool


def square(x: int) -> int:
    return x * x


def sleep_then(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def forever() -> None:
    while True:
        time.sleep(1)


def spin() -> None:
    while True:
        pass


def fail(message: str) -> None:
    raise ValueError(message)


def exit_worker(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    import ctypes
    ctypes.string_at(0)


def unpicklable_result() -> object:
    return threading.Lock()


def whoami() -> int:
    return os.getpid()


def _gone(pids: set[int], within: float = 10.0) -> bool:
    """Killed workers are reaped in the background: wait (briefly) until they are gone."""
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(2) as p:
        yield p


def test_call_returns_value(pool):
    result = pool.call(square, 7, timeout=10)
    assert result.status == OK and result.ok and result.value == 49 and result.error == ""


@pytest.mark.parametrize("fn", [forever, spin])
def test_hanging_call_times_out_and_pool_keeps_serving(pool, fn):
    before = set(pool.pids)
    start = time.monotonic()
    result = pool.call(fn, timeout=0.3)
    elapsed = time.monotonic() - start
    assert result.status == TIMEOUT and not result.ok
    assert elapsed < 5, "a hanging call must come back soon after its deadline"
    killed = before - set(pool.pids)
    assert len(killed) <= 1
    assert len(pool.pids) == len(before), "a killed worker is replaced at once"
    assert _gone(killed)
    assert pool.call(square, 3, timeout=10).value == 9


def test_exception_is_an_error_result_and_worker_survives(pool):
    pool.call(square, 1, timeout=10)
    result = pool.call(fail, "nope", timeout=10)
    assert result.status == ERROR and result.error == "ValueError: nope"
    assert pool.call(square, 4, timeout=10).value == 16


@pytest.mark.parametrize("fn,args,why", [(exit_worker, (3,), "exited with code 3"),
                                          (segfault, (), "killed by signal 11")])
def test_dying_worker_is_replaced(pool, fn, args, why):
    result = pool.call(fn, *args, timeout=10)
    assert result.status == CRASHED and why in result.error
    assert pool.call(square, 5, timeout=10).value == 25


def test_unsendable_things_are_errors(pool):
    assert pool.call(lambda: 1, timeout=10).status == ERROR  # a lambda does not pickle
    result = pool.call(unpicklable_result, timeout=10)
    assert result.status == ERROR and "could not be sent back" in result.error
    assert pool.call(square, 6, timeout=10).value == 36


def test_map_keeps_order_and_bounds_each_item(pool):
    results = pool.map(sleep_then, [(0.2, 1), (60, 2), (0.0, 3), (0.1, 4)], timeout=1.0, star=True)
    assert [r.status for r in results] == [OK, TIMEOUT, OK, OK]
    assert [r.value for r in results] == [1, None, 3, 4]
    assert [r.value for r in pool.map(square, range(12), timeout=10)] == [i * i for i in range(12)]


def test_map_chunks_bound_each_item_and_isolate_bad_ones(pool):
    items = [(0.0, 1), (60, 2), (0.0, 3), (0.0, 4), (60, 5), (0.0, 6)]
    results = pool.map(sleep_then, items, timeout=0.5, star=True, chunksize=6)
    assert [r.status for r in results] == [OK, TIMEOUT, OK, OK, TIMEOUT, OK]
    assert [r.value for r in results] == [1, None, 3, 4, None, 6]
    mixed = pool.map(square, [2, threading.Lock(), 3], timeout=10, chunksize=3)  # a lock does not pickle
    assert [r.status for r in mixed] == [OK, ERROR, OK] and mixed[0].value == 4 and mixed[2].value == 9
    assert "could not send" in mixed[1].error


def meet(folder: str, name: str, others: int) -> bool:
    """Leave a mark and wait (up to 20 s) until ``others`` more marks exist: only items that
    run at the same time can all see each other."""
    open(os.path.join(folder, name), "w").close()
    deadline = time.monotonic() + 20
    while len(os.listdir(folder)) < others + 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_map_runs_items_at_the_same_time(pool, tmp_path):
    results = pool.map(meet, [(str(tmp_path), "a", 1), (str(tmp_path), "b", 1)], timeout=30, star=True)
    assert [r.value for r in results] == [True, True]


def test_calls_from_many_threads(pool):
    results: dict[int, int] = {}

    def client(i: int) -> None:
        if i == 3:
            results[i] = pool.call(forever, timeout=0.3).status
        else:
            results[i] = pool.call(square, i, timeout=10).value

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: (TIMEOUT if i == 3 else i * i) for i in range(8)}


def test_close_leaves_no_processes():
    pool = WorkerPool(2)
    pool.map(sleep_then, [(0.3, 0), (0.3, 0)], timeout=10, star=True)
    pids = set(pool.pids)
    assert len(pids) == 2
    pool.close()
    pool.close()  # twice is fine
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.call(square, 1, timeout=1)


def test_context_manager_and_lazy_start():
    with WorkerPool(1) as pool:
        assert pool.pids == []  # nothing started yet
        pid = pool.call(whoami, timeout=10).value
        assert pid != os.getpid() and pool.pids == [pid]
    assert not _alive(pid)


def test_start_brings_up_every_worker():
    with WorkerPool(2) as pool:
        pool.start()
        pids = set(pool.pids)
        assert len(pids) == 2
        pool.start()  # idempotent
        assert set(pool.pids) == pids


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def test_memory_limit_is_on_top_of_the_start_size():
    with WorkerPool(1, memory_limit=200 * 1024 * 1024) as pool:
        assert pool.call(allocate, 50, timeout=30).value == 50 * 1024 * 1024
        result = pool.call(allocate, 1000, timeout=30)
        assert result.status == ERROR and "MemoryError" in result.error
        assert pool.call(square, 2, timeout=30).value == 4


def test_bad_arguments_are_refused(pool):
    with pytest.raises(ValueError, match="fork"):
        WorkerPool(1, start_method="fork")
    with pytest.raises(ValueError, match="num_workers"):
        WorkerPool(-1)
    with pytest.raises(ValueError, match="timeout must be a positive"):
        pool.call(square, 1, timeout=0)


def test_workers_end_with_the_interpreter(tmp_path):
    """A pool left open (even with a call hanging in another thread) is cleaned up at exit."""
    import subprocess
    import sys

    script = tmp_path / "leave_open.py"
    script.write_text(
        "import threading, time\n"
        "from rewardgym.core.workers import WorkerPool\n"
        "def forever():\n"
        "    while True: time.sleep(1)\n"
        "if __name__ == '__main__':\n"
        "    pool = WorkerPool(2)\n"
        "    threading.Thread(target=pool.call, args=(forever,), kwargs={'timeout': 600}, daemon=True).start()\n"
        "    time.sleep(0.1)\n"
        "    assert pool.call(abs, -1, timeout=30).value == 1\n"
        "    print(*pool.pids, flush=True)\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    pids = {int(p) for p in out.stdout.split()}
    assert len(pids) == 2 and _gone(pids)


def test_a_script_without_a_main_guard_can_use_pools(tmp_path) -> None:
    """Workers never re-run the caller's __main__, so top-level calls in a plain script work."""
    import subprocess
    import sys

    script = tmp_path / "plain_script.py"
    script.write_text("import rewardgym\n"
                      "v = rewardgym.score('GSM8K-v0', ['<answer>72</answer>'], [{'id': 'a', 'prompt': 'p', 'answer': '72'}])\n"
                      "print('REWARD', v[0].reward)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("REWARD 1.0") == 1


def test_import_main_lets_workers_run_functions_from_a_guarded_script(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "guarded.py"
    script.write_text("from rewardgym.core.workers import WorkerPool\n"
                      "def double(x):\n    return 2 * x\n"
                      "if __name__ == '__main__':\n"
                      "    with WorkerPool(1, import_main=True) as pool:\n"
                      "        print('RESULT', pool.call(double, 21, timeout=60).value)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and "RESULT 42" in proc.stdout, proc.stderr[-2000:]
