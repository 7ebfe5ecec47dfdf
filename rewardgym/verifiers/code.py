"""Code check: run the completion's program against the task's hidden tests in the sandbox.

Extraction rule (shared with core/answer.py): when the completion has ``<answer>`` blocks the
shared rule picks the last one (different blocks are ``ambiguous``); the code is then the last
fenced block (```python, ```py or a bare ```) inside that text, or the whole block when it
has no fence. Without an answer block the code is the last fenced block of the completion;
with neither, the verdict is ``no_answer``. Code that does not compile is ``format_error``
(checked in this process with ``compile``, which never runs it).

Tasks (``Task.answer``): ``{"kind": "function", "tests": [snippet, ...], "preamble": str}``
(HumanEval / MBPP: the snippets run after the code, the preamble, e.g. the prompt's imports,
before it; when the code does not define ``meta["entry_point"]`` the task's ``meta["prompt_code"]``
is put in front, so a bare function body works as in HumanEval) or ``{"kind": "stdio", "tests":
[{"input", "output"}, ...]}`` (the code is a program; stdout must match).

Reward: the fraction of tests passed, or with ``all_or_nothing`` 1 only when all pass. The
verdict's details list each test's pass/fail and the first failure's message. Everything runs
in the sandbox (rewardgym.sandbox), never in this process; ``time_limit`` is the sandbox's
wall-clock kill plus start-up. Reasons: ``wrong_answer`` (some tests failed), ``timeout`` (a test
was cut off), ``runtime_error`` (the code raised before any test ran). A sandbox that cannot
run at all raises SandboxError: an infrastructure fault, not a verdict on the completion.
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any

from ..core.answer import answer_blocks, extract_answer
from ..core.types import FORMAT_ERROR, NO_ANSWER, OK, RUNTIME_ERROR, TIMEOUT, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier
from ..sandbox import Backend, Execution, Limits, shared_backend

HARNESS = Path(__file__).with_name("code_harness.py")
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
#: Every HumanEval and MBPP reference needs under 3 s of CPU (MBPP 123 the most, 2.8 s here); a
#: hanging completion costs the whole wall-clock limit, so it is kept short.
DEFAULT_LIMITS = Limits(wall_time=5.0, cpu_time=5.0, memory_mb=1024, processes=16, output_bytes=256 * 1024)
STARTUP = 2.0


def extract_code(text: str) -> tuple[str | None, str]:
    """The code of a completion by the rule in the module docstring, and a reason code."""
    if not isinstance(text, str):
        return None, NO_ANSWER
    scope = text
    if answer_blocks(text):
        found = extract_answer(text)
        if found.answer is None:
            return None, found.reason
        scope = found.answer
        fences = _FENCE.findall(scope)
        return (fences[-1] if fences else scope).strip("\n"), OK
    fences = _FENCE.findall(scope)
    if not fences:
        return None, NO_ANSWER
    return fences[-1].strip("\n"), OK


def program_for(code: str, task: Task) -> str:
    """What is run: the preamble, the prompt's code when the completion is only a body, the code."""
    answer, meta = task.answer, task.meta
    entry = meta.get("entry_point")
    if entry and meta.get("prompt_code") and not re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\b",
                                                           code, re.MULTILINE):
        code = meta["prompt_code"] + code
    preamble = answer.get("preamble") or ""
    return f"{preamble}\n{code}\n" if preamble else code


class CodeVerifier(Verifier):
    """Reward = fraction of hidden tests passed (or all-or-nothing), run in the sandbox.

    Args:
      all_or_nothing: reward 1 only when every test passes.
      backend: a sandbox backend, or its name (None: the process-wide default, see rewardgym.sandbox).
      limits: the sandbox limits for one completion (all of its tests together).
      test_timeout: seconds per stdin/stdout test; after the first test that overruns it the
        rest are not run (failed), so a hanging program costs one timeout, not one per test.
        Function tests share one interpreter and the whole run's wall-clock limit.
    """

    max_chars = 100_000

    def __init__(self, *, all_or_nothing: bool = False, backend: Backend | str | None = None,
                 limits: Limits | None = None, test_timeout: float = 2.0):
        self.all_or_nothing, self.limits, self.test_timeout = all_or_nothing, limits or DEFAULT_LIMITS, test_timeout
        self._backend, self._lock = backend, threading.Lock()
        self._harness = HARNESS.read_text()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (worker processes, gymnasium's checker) carry the backend's name and
        use the process-wide backend of that name on their side."""
        state = dict(self.__dict__)
        del state["_lock"]
        if isinstance(state["_backend"], Backend):
            state["_backend"] = state["_backend"].name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    #: Programs run in sandbox processes, so a batch is checked concurrently (Verifier.verify_batch).
    offloaded = True

    @property
    def time_limit(self) -> float:  # type: ignore[override]
        return self.limits.wall_time + STARTUP

    @property
    def backend(self) -> Backend:
        """Resolved on first use, so an env can be made (prompts, data) where no sandbox runs."""
        with self._lock:
            if not isinstance(self._backend, Backend):
                self._backend = shared_backend(self._backend)
            return self._backend

    def verify(self, completion: str, task: Task) -> Verdict:
        code, reason = extract_code(self.clip(completion))
        if code is None:
            return Verdict.wrong(reason)
        if not code.strip():
            return Verdict.wrong(NO_ANSWER, code)
        program = program_for(code, task) if task.answer.get("kind", "function") == "function" else code
        try:
            with warnings.catch_warnings():  # e.g. invalid escapes: the program's business, not ours
                warnings.simplefilter("ignore")
                compile(program, "solution.py", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
            return Verdict.wrong(FORMAT_ERROR, code, why=f"does not compile: {type(exc).__name__}: {exc}"[:300])
        return self.run_tests(program, task, parsed=code)

    def run_tests(self, program: str, task: Task, parsed: str | None = None) -> Verdict:
        """Run ``program`` (the code as it will run) against the task's tests in the sandbox and score it."""
        answer, code = task.answer, parsed if parsed is not None else program
        tests = answer["tests"]
        token = os.urandom(16).hex()
        job = {"kind": answer.get("kind", "function"), "solution": program, "tests": tests,
               "timeout": self.test_timeout, "token": token}
        ex = self.backend.run(self._harness, stdin=json.dumps(job), limits=self.limits)
        results = _parse(ex, token, len(tests))
        passed = sum(ok for ok, _ in results)
        first = next((msg for ok, msg in results if not ok), None)
        details: dict[str, Any] = {"passed": passed, "total": len(tests), "tests": [ok for ok, _ in results]}
        if first is not None:
            details["first_failure"] = first
        if passed == len(tests):
            return Verdict.right(code, **details)
        reward = 0.0 if self.all_or_nothing else passed / len(tests)
        return Verdict(reward=reward, correct=False, parsed=code, reason=_reason(results), details=details)


def _reason(results: list[tuple[bool, str]]) -> str:
    """timeout if any test was cut off, runtime_error if the code itself failed to run,
    else wrong_answer."""
    failures = [msg for ok, msg in results if not ok]
    if any(msg == "timeout" for msg in failures):
        return TIMEOUT
    if all(msg.startswith("solution:") for msg in failures):
        return RUNTIME_ERROR
    return WRONG_ANSWER


def _parse(ex: Execution, token: str, count: int) -> list[tuple[bool, str]]:
    """Per-test (passed, message) from the harness's token-marked lines; missing ones failed."""
    seen: dict[int, tuple[bool, str]] = {}
    prefix = token + " "
    for line in ex.stdout.splitlines():
        if not line.startswith(prefix):
            continue
        index, _, rest = line[len(prefix):].partition(" ")
        if index.isdigit() and int(index) < count and int(index) not in seen:
            status, _, message = rest.partition(" ")
            seen[int(index)] = (status == "ok", message)
    missing = "timeout" if ex.status == "timeout" else f"not run: harness stopped ({ex.status})"
    return [seen.get(i, (False, missing)) for i in range(count)]
