"""The test harness that runs inside the sandbox (standard library only; sent as the program).

stdin: one JSON object {kind, solution, tests, timeout, token}. Output: one line per test,
``<token> <index> ok`` or ``<token> <index> fail <message>``, on the harness's original stdout;
a test with no line did not finish (the verifier counts it as failed).

kind "function" (HumanEval, MBPP): ``solution`` is Python source and each test a snippet
(asserts; HumanEval's ``check(candidate)`` plus the call), run after it in this interpreter,
in order, each counted alone, as HumanEval's own harness does. The solution's prints go to
/dev/null, ``exit()`` is caught, and ``os._exit`` leaves the remaining tests unreported, so
exiting early or printing "passed" never passes a test. The token comes through stdin and is
never in a file, but it is in this interpreter's memory: a program that deliberately digs it
out through the interpreter's internals to forge the report is not stopped (no in-process
harness can stop that; run stdio tasks for a hard guarantee).

kind "stdio" (contest style): ``solution`` is a program run once per test {"input", "output"}
in a child process, with ``timeout`` seconds each (after a timeout the remaining tests are
reported failed without running, so a hang costs one timeout); its stdout must equal the output up to
trailing whitespace on each line and trailing blank lines. The harness first makes itself
non-dumpable, so the child (same uid) can neither read the expected outputs or the token from
/proc/<pid>/mem nor write into the harness's stdout through /proc/<pid>/fd.
"""

from __future__ import annotations

import json
import os
import sys

def _non_dumpable() -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _same_output(got: str, want: str) -> bool:
    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines
    return norm(got) == norm(want)


def _first_line(exc: BaseException) -> str:
    import traceback  # imported only on failure: start-up time is most of a passing run
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def _function(job: dict, emit) -> None:
    """Run the solution, then each test, in this interpreter; the solution's own output goes
    to /dev/null so only ``emit`` (on a saved descriptor) reaches the verifier."""
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(job["solution"], "solution.py", "exec"), scope)
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: exiting is not passing
        for i in range(len(job["tests"])):
            emit(i, False, f"solution: {_first_line(exc)}")
        return
    for i, test in enumerate(job["tests"]):
        try:
            exec(compile(test, f"test_{i}.py", "exec"), dict(scope))
        except BaseException as exc:  # noqa: BLE001
            plain = isinstance(exc, AssertionError) and not str(exc)
            emit(i, False, f"AssertionError in test {i}" if plain else _first_line(exc))
        else:
            emit(i, True, "")


def _stdio(job: dict, emit) -> None:
    import subprocess
    with open("solution.py", "w", encoding="utf-8") as fh:
        fh.write(job["solution"])
    for i, test in enumerate(job["tests"]):
        try:
            proc = subprocess.run([sys.executable, "-s", "solution.py"], input=test["input"].encode(),
                                  capture_output=True, timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            emit(i, False, "timeout")
            for rest in range(i + 1, len(job["tests"])):
                emit(rest, False, f"not run after the timeout in test {i}")
            return
        got = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            emit(i, False, f"exit code {proc.returncode}" + (f": {tail[-1][:200]}" if tail else ""))
        elif _same_output(got, test["output"]):
            emit(i, True, "")
        else:
            emit(i, False, f"wrong output on test {i}: expected {test['output'][:80]!r}, got {got[:80]!r}")


def main() -> None:
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    token = job.pop("token")
    report = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    sys.stdout = open(os.devnull, "w")

    def emit(index: int, ok: bool, message: str) -> None:
        report.write(f"{token} {index} {'ok' if ok else 'fail ' + message.replace(chr(10), ' ')}\n")

    if job["kind"] == "function":
        _function(job, emit)
    else:
        _non_dumpable()
        _stdio(job, emit)
    report.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
