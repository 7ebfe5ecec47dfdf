"""The test harness that runs inside the sandbox (standard library only; sent as the program).

stdin: one JSON object {kind, solution, tests, timeout, token}. stdout: one line per test,
``<token> <index> ok`` or ``<token> <index> fail <message>``; a test with no line did not finish.

Why it is shaped like this:
- The candidate never runs in the harness process: each task runs it in a child, so an early
  ``exit(0)``, a crash or a hang costs only the tests not yet reported.
- The harness makes itself non-dumpable before reading anything, so the child (same uid) can
  neither read the expected outputs from /proc/<pid>/mem nor write fake lines into the
  harness's stdout through /proc/<pid>/fd/1. Results carry a random token the child never sees
  for stdin/stdout tasks; for function tasks the tests run in the candidate's own interpreter
  (as in HumanEval's harness), where the token and the test code are reachable by
  introspection, so a program that deliberately forges the report through the interpreter's
  internals is not stopped; exiting early, printing "passed", reading test files or killing
  the harness are.

kind "function": ``solution`` is Python source, each test a Python snippet (asserts; HumanEval's
``check(candidate)`` plus the call) run after it in one child, in order, each counted alone.
kind "stdio": ``solution`` is a program, each test {"input", "output"}: the program's stdout on
that input must equal the output up to trailing whitespace on each line and trailing blank lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CHILD = r'''
import json, os, sys, traceback
payload = json.loads(sys.stdin.read())
report = os.fdopen(os.dup(1), "w", buffering=1)
token = payload.pop("token")
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
scope = {"__name__": "__main__", "__builtins__": __builtins__}
def first_line(exc):
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
try:
    exec(compile(payload["solution"], "solution.py", "exec"), scope)
except BaseException as exc:
    for i in range(len(payload["tests"])):
        report.write(f"{token} {i} fail solution: {first_line(exc)}\n")
    os._exit(0)
for i, test in enumerate(payload["tests"]):
    try:
        exec(compile(test, f"test_{i}.py", "exec"), dict(scope))
    except BaseException as exc:
        message = first_line(exc) if str(exc) or not isinstance(exc, AssertionError) else f"AssertionError in test {i}"
        report.write(f"{token} {i} fail {message}\n")
    else:
        report.write(f"{token} {i} ok\n")
os._exit(0)
'''


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


def _function(job: dict, emit) -> None:
    child_payload = json.dumps({"solution": job["solution"], "tests": job["tests"], "token": job["child_token"]})
    timeout = job["timeout"] * max(1, len(job["tests"]))
    try:
        proc = subprocess.run([sys.executable, "-s", "-c", CHILD], input=child_payload.encode(),
                              capture_output=True, timeout=timeout)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, code = exc.stdout or b"", b"", None
    done = {}
    prefix = job["child_token"] + " "
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith(prefix):
            index, _, rest = line[len(prefix):].partition(" ")
            if index.isdigit() and int(index) not in done:
                done[int(index)] = rest
    for i in range(len(job["tests"])):
        if i in done:
            status, _, message = done[i].partition(" ")
            emit(i, status == "ok", message)
        elif code is None:
            emit(i, False, "timeout")
        else:
            tail = err.decode("utf-8", "replace").strip().splitlines()
            emit(i, False, f"exited ({code}) before the test ran" + (f": {tail[-1][:200]}" if tail else ""))


def _stdio(job: dict, emit) -> None:
    with open("solution.py", "w", encoding="utf-8") as fh:
        fh.write(job["solution"])
    for i, test in enumerate(job["tests"]):
        try:
            proc = subprocess.run([sys.executable, "-s", "solution.py"], input=test["input"].encode(),
                                  capture_output=True, timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            emit(i, False, "timeout")
            continue
        got = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            emit(i, False, f"exit code {proc.returncode}" + (f": {tail[-1][:200]}" if tail else ""))
        elif _same_output(got, test["output"]):
            emit(i, True, "")
        else:
            emit(i, False, f"wrong output on test {i}: expected {test['output'][:80]!r}, got {got[:80]!r}")


def main() -> None:
    _non_dumpable()
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    token = job.pop("token")
    job["child_token"] = os.urandom(16).hex()
    start = time.monotonic()

    def emit(index: int, ok: bool, message: str) -> None:
        text = "ok" if ok else "fail " + message.replace("\n", " ")
        sys.stdout.write(f"{token} {index} {text}\n")
        sys.stdout.flush()

    (_function if job["kind"] == "function" else _stdio)(job, emit)
    sys.stdout.write(f"{token} done {time.monotonic() - start:.3f}\n")


if __name__ == "__main__":
    main()
