"""A pool of killable worker processes: run a picklable function under a per-call deadline.

Why: checks such as sympy simplification or running model-written code can hang in C code
where no signal or thread can interrupt them. Each call here runs in a separate process; a
worker past its deadline is killed (SIGKILL) and replaced at once, the call returns a
``timeout`` result, and the pool keeps serving. The pool is safe to use from any thread.

Workers start from a ``forkserver`` (``spawn`` where that is unavailable), never plain ``fork``,
which is unsafe in a process that runs threads. ``preload`` names modules the fork server
imports once, so replacing a killed worker costs a fork, not a fresh ``import sympy``; the
fork server is one per interpreter, so preload requests from all pools add up.

The deadline bounds the time a call runs on a worker; waiting for a free worker (when more
callers than workers) and a fresh worker's start-up are not counted against it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

OK = "ok"
TIMEOUT = "timeout"
ERROR = "error"
CRASHED = "crashed"

#: Seconds a new worker may take to start and run its initializer before the call fails.
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    """What a call came to: ``status`` is ok, timeout, error (the function raised) or crashed
    (the worker died: a segfault, ``os._exit``, the memory limit). ``value`` holds the return
    value when ok; ``error`` a one-line description otherwise."""

    status: str
    value: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def _worker_main(conn: Connection, initializer: Callable[..., Any] | None, initargs: tuple,
                 memory_limit: int | None) -> None:
    """Worker loop: receive ``(fn, [args, ...])``, send ``(status, value_or_error)`` per item; exit on None."""
    try:
        if memory_limit:
            import resource
            limit = _address_space() + memory_limit
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if initializer is not None:
            initializer(*initargs)
        conn.send(("ready", None))
    except BaseException:  # noqa: BLE001 - report any start-up failure to the parent
        conn.send((ERROR, "initializer failed: " + traceback.format_exc(limit=3)))
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, batch = job
        for args in batch:  # one reply per item, sent as soon as it is ready
            try:
                reply = (OK, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - a failing function is a result, not a crash
                reply = (ERROR, f"{type(exc).__name__}: {exc}"[:2000])
            try:
                conn.send(reply)
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable return value
                conn.send((ERROR, f"result could not be sent back: {type(exc).__name__}: {exc}"[:2000]))


def _address_space() -> int:
    """This process's current virtual memory size in bytes (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class WorkerStartError(RuntimeError):
    """A worker could not start (its initializer failed, or the interpreter cannot launch
    processes); raised, not returned, because no call can succeed until it is fixed."""


class _Worker:
    """One process and the parent's end of its pipe."""

    def __init__(self, ctx: mp.context.BaseContext, initializer: Callable[..., Any] | None,
                 initargs: tuple, memory_limit: int | None, import_main: bool = False):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, initializer, initargs, memory_limit),
                                   daemon=True, name="rewardgym-worker")
        if import_main:
            self.process.start()
        else:
            _start_without_main(self.process)
        child.close()
        self.ready = False

    def wait_ready(self, timeout: float) -> str | None:
        """None once the worker reported ready, else why it did not."""
        if self.ready:
            return None
        try:
            if not self.conn.poll(timeout):
                return f"worker did not start within {timeout:g} s"
            status, message = self.conn.recv()
        except (EOFError, OSError):
            return "worker exited during start-up"
        if status != "ready":
            return message
        self.ready = True
        return None

    def kill(self, wait: bool = True) -> None:
        """SIGKILL; without ``wait`` a daemon thread reaps the process (a big process can take
        a moment to die, and the caller should not wait for it)."""
        if self.process.is_alive():
            self.process.kill()
        if wait:
            self.process.join(5)
        else:
            threading.Thread(target=self.process.join, daemon=True, name="rewardgym-reaper").start()
        self.conn.close()

    def idle_and_ready(self) -> bool:
        try:
            return self.ready or self.conn.poll(0)
        except OSError:
            return False

    def stop(self) -> None:
        """Ask politely, then kill."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(0.5)
        self.kill()


#: What the fork server imports when it starts. Not "__main__" (Python's default): workers only
#: run rewardgym functions, and re-running a user's script there breaks scripts without a
#: ``if __name__ == "__main__":`` guard (see _start_without_main).
_PRELOAD: list[str] = []
_MAIN_LOCK = threading.Lock()


def _start_without_main(process: mp.process.BaseProcess) -> None:
    """Start a forkserver/spawn child without re-running the caller's ``__main__``: the main
    module's file and spec are hidden while the child (and, the first time, the fork server)
    is prepared, so a script that calls a verifier at top level works as written."""
    main = sys.modules.get("__main__")
    if main is None:
        return process.start()
    with _MAIN_LOCK:
        saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
        try:
            process.start()
        finally:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def request_preload(modules: Iterable[str]) -> None:
    """Ask the (interpreter-wide) fork server to import ``modules`` before it forks workers.
    Requests add up across pools; they take effect only if made before the fork server starts
    (the first worker of any pool), so a module can request at import time what its pools need."""
    added = [m for m in modules if m not in _PRELOAD]
    if added and "forkserver" in mp.get_all_start_methods():
        _PRELOAD.extend(added)
        mp.get_context("forkserver").set_forkserver_preload(list(_PRELOAD))


def _context(start_method: str | None) -> mp.context.BaseContext:
    if start_method == "fork":
        raise ValueError("WorkerPool: start_method 'fork' is unsafe with threads; use 'forkserver' or 'spawn'")
    if start_method is None:
        start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(start_method)


class WorkerPool:
    """``num_workers`` processes that run picklable functions with per-call deadlines.

    Args:
      num_workers: number of processes (default: CPU count).
      initializer, initargs: run once in every new worker (e.g. import and warm up a library).
      preload: modules the fork server imports before forking workers (see ``request_preload``).
      memory_limit: address space in bytes a worker may add to what it holds at start (None:
        no limit); relative, because a worker forked from a process that imported torch or
        similar already holds gigabytes of mappings. A call that exceeds it gets ``error``
        (MemoryError) or ``crashed``.
      start_method: ``forkserver`` (default where available) or ``spawn``.
      import_main: let workers import the caller's ``__main__`` (Python's default), so functions
        defined there can be called; the script then needs an ``if __name__ == "__main__":``
        guard. Off by default: rewardgym's own pools only run rewardgym functions.

    Workers start lazily on first use. ``close()`` (or leaving a ``with`` block, or interpreter
    exit) stops them all.
    """

    def __init__(self, num_workers: int | None = None, *, initializer: Callable[..., Any] | None = None,
                 initargs: Sequence[Any] = (), preload: Sequence[str] = (), memory_limit: int | None = None,
                 start_method: str | None = None, import_main: bool = False):
        self.num_workers = num_workers or os.cpu_count() or 1
        if self.num_workers < 1:
            raise ValueError(f"WorkerPool: num_workers must be >= 1, got {num_workers}")
        self._ctx = _context(start_method)
        request_preload(preload)
        self._spawn_args = (initializer, tuple(initargs), memory_limit, import_main)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        # Runs on close(), on garbage collection and at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, WorkerPool._shutdown, self._all, self._cond)

    # -- public API ---------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Result:
        """Run ``fn(*args)`` on a worker; the result within ``timeout`` seconds of it starting there.
        Raises WorkerStartError when no worker can be started, RuntimeError after close()."""
        return self._run(fn, [args], timeout)[0]

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, timeout: float, star: bool = False,
            chunksize: int | None = None) -> list[Result]:
        """``call(fn, item)`` for every item, in parallel over the workers; results in order.
        With ``star=True`` each item is a tuple of arguments. Items go to workers in chunks
        (default: about four per worker) that a worker runs back to back, replying per item, so
        it never waits on this process between items; each item still has its own ``timeout``
        from the moment the worker starts it."""
        calls = [tuple(item) if star else (item,) for item in items]
        if not calls:
            return []
        size = chunksize or max(1, min(64, -(-len(calls) // (4 * self.num_workers))))
        chunks = [calls[i:i + size] for i in range(0, len(calls), size)]
        if len(chunks) == 1:
            return self._run(fn, chunks[0], timeout)
        executor = self._thread_executor()
        return [r for results in executor.map(lambda chunk: self._run(fn, chunk, timeout), chunks) for r in results]

    def start(self) -> None:
        """Start every worker now and wait until all are ready (otherwise they start on first use)."""
        held: list[_Worker] = []
        try:
            for _ in range(self.num_workers):
                held.append(self._acquire())
        finally:
            for worker in held:
                self._release(worker, healthy=True)

    def close(self) -> None:
        """Stop every worker; later calls raise RuntimeError. Safe to call twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._finalizer()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        with self._cond:
            return sorted(w.process.pid for w in self._all if w.process.pid is not None)

    # -- internals ----------------------------------------------------------------------
    def _run(self, fn: Callable[..., Any], batch: list[tuple], timeout: float) -> list[Result]:
        """Run a batch on one worker; after a timeout or crash the rest goes to a fresh worker."""
        if not timeout > 0:
            raise ValueError(f"WorkerPool: timeout must be a positive number of seconds, got {timeout!r}")
        results: list[Result] = []
        while len(results) < len(batch):
            rest = batch[len(results):]
            part = self._run_on_one(fn, rest, timeout)
            if part is None:  # the batch did not pickle: send items one at a time to find the culprit
                part = [r for args in rest for r in self._run_on_one(fn, [args], timeout) or ()]
            results.extend(part)
        return results

    def _run_on_one(self, fn: Callable[..., Any], batch: list[tuple], timeout: float) -> list[Result] | None:
        """Results for a prefix of ``batch`` (all of it unless an item timed out or crashed);
        None when a batch of several could not be sent."""
        worker = self._acquire()
        healthy, results = False, []
        try:
            try:
                worker.conn.send((fn, batch))
            except Exception as exc:  # noqa: BLE001 - unpicklable function or arguments
                healthy = worker.process.is_alive()
                if len(batch) > 1:
                    return None
                return [Result(ERROR, error=f"could not send the call: {type(exc).__name__}: {exc}")]
            for _ in batch:
                if not worker.conn.poll(timeout):
                    results.append(Result(TIMEOUT, error=f"no result within {timeout:g} s; worker killed"))
                    return results
                try:
                    status, value = worker.conn.recv()
                except (EOFError, OSError):
                    results.append(Result(CRASHED, error=_exit_description(worker)))
                    return results
                results.append(Result(OK, value) if status == OK else Result(ERROR, error=value))
            healthy = True
            return results
        finally:
            self._release(worker, healthy)

    def _thread_executor(self) -> ThreadPoolExecutor:
        with self._cond:
            if self._closed:
                raise RuntimeError("WorkerPool is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="rewardgym-pool")
            return self._executor

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("WorkerPool is closed")
                if self._idle:
                    ready = [i for i, w in enumerate(self._idle) if w.idle_and_ready()]
                    worker = self._idle.pop(ready[-1] if ready else -1)
                    break
                if len(self._all) < self.num_workers:
                    worker = _Worker(self._ctx, *self._spawn_args)
                    self._all.add(worker)
                    break
                self._cond.wait()
        problem = worker.wait_ready(STARTUP_TIMEOUT)
        if problem is None:
            return worker
        self._release(worker, healthy=False)
        raise WorkerStartError(f"WorkerPool: {problem}")

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill(wait=False)
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                if healthy:
                    worker.stop()
                elif not self._closed:
                    # Replace it now, so that the next call does not wait for a start-up.
                    fresh = _Worker(self._ctx, *self._spawn_args)
                    self._all.add(fresh)
                    self._idle.append(fresh)
            self._cond.notify()

    @staticmethod
    def _shutdown(workers: set[_Worker], cond: threading.Condition) -> None:
        with cond:
            doomed = list(workers)
            workers.clear()
        for worker in doomed:
            worker.stop()


def _exit_description(worker: _Worker) -> str:
    worker.process.join(1)
    code = worker.process.exitcode
    if code is not None and code < 0:
        return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"
