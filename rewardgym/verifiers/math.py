"""Math check: is the completion's final answer mathematically equal to the task's answer?

Extraction follows the shared rule (``rewardgym.core.answer``): the last ``<answer>`` block,
else the last ``\\boxed{}``. Several *different* answers (``\\boxed{3} ... \\boxed{4}``, or two
answer blocks that differ as text) are ``ambiguous`` and score 0, even when one of them is
right: hedging never wins. Repeating one answer is fine.

Equality is decided by Hugging Face's ``math-verify`` (LaTeX and plain expressions parsed to
sympy, compared numerically and symbolically; see its docs), with an exact-text fallback for
answers it cannot parse. Both sides are read as if boxed, after two clean-ups math-verify
lacks (a final period, thin spaces between digit groups), so ``\\frac{1}{2}``, ``\\dfrac12``
and ``0.5`` agree, ``1,000`` and ``1\\,000`` equal ``1000``, ``50\\%`` equals ``0.5``,
``10 \\text{ cm}`` equals ``10``, ``(C)`` equals ``C``, ``\\{1,2\\}`` equals ``\\{2,1\\}``;
tests/test_math.py holds the full table of intended verdicts.

math-verify's own timeout is ``signal.alarm``: it raises off the main thread and cannot
interrupt one long C call inside sympy (``\\boxed{9^{9^{9}}}`` does not finish in seconds). So every
check runs in a killable worker pool (``rewardgym.core.workers``) with math-verify's timeouts
switched off: a check past ``time_limit`` has its worker killed and gives ``reason="timeout"``.
Verdicts for repeated (gold, answer) pairs come from a bounded LRU cache (timeouts included,
so a hostile answer costs one kill, not one per sample, and repeats agree). Workers fork warm
from a fork server that ran one check of each common answer form (``math_warm``), and parse
LaTeX in two stages (``math_sll``: same results, sooner).

Reasons: ``ok``, ``wrong_answer``, ``no_answer``, ``ambiguous``, ``timeout``; ``format_error``
for an empty answer or one over ``MAX_ANSWER_CHARS``; ``runtime_error`` when the worker died
(e.g. the memory limit). ``parsed`` is math-verify's normalised form of the answer
(``0.5`` -> ``\\frac{1}{2}``), or the answer text when it could not be parsed.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..core.answer import extract_answer
from ..core.types import FORMAT_ERROR, RUNTIME_ERROR, TIMEOUT, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier
from ..core.workers import Result, WorkerPool, request_preload

#: Longest answer (after extraction) that is sent to sympy; longer ones are a format error.
MAX_ANSWER_CHARS = 1_000
#: Longest normalised form reported in ``Verdict.parsed``.
MAX_PARSED_CHARS = 500
#: Address space a math worker may allocate beyond its start-up size: a runaway sympy
#: computation fails, the machine does not swap.
WORKER_MEMORY = 2 * 1024**3


# -- what runs inside a worker -------------------------------------------------------------
def _warm_up() -> None:
    """Worker initializer: a worker forked from the fork server has imported the preload module
    there, warm (a no-op here); one started any other way imports it now, before it counts as
    ready."""
    importlib.import_module(_PRELOAD_MODULE)


#: LaTeX spaces between digit groups (``1\\,000``), which math-verify reads as a product.
_DIGIT_GROUP_SPACE = re.compile(r"(?<=\d)(?:\\,|\\ |~|\\;)(?=\d{3}(?!\d))")


def normalise(text: str) -> str:
    """The small clean-ups math-verify does not do: a sentence's final period (``5.``) and
    thin spaces between digit groups."""
    text = _DIGIT_GROUP_SPACE.sub("", text.strip())
    return text[:-1].rstrip() if text.endswith(".") and len(text) > 1 else text


def _parse(text: str) -> list[Any]:
    from math_verify import parse
    text = normalise(text)
    boxed = text if "\\boxed" in text else "\\boxed{" + text + "}"
    return parse(boxed, parsing_timeout=None)


#: A gold answer is checked against many samples (GRPO draws a group per prompt): parse it once.
_parse_gold = lru_cache(maxsize=4096)(_parse)


def judge(gold: str, answer: str) -> tuple[bool, str | None]:
    """(equal, normalised answer) for one pair; runs in a worker, may be slow on hostile input.
    Answers that are the gold's text (up to spacing) are equal without asking math-verify, and
    one that is the gold's exact text reuses the gold's parse: parsing is deterministic."""
    from math_verify import verify
    expected = _parse_gold(gold)
    target = expected if answer == gold else _parse(answer)
    normal = next((x for x in reversed(target) if isinstance(x, str)), None)
    equal = " ".join(gold.split()) == " ".join(answer.split()) or bool(
        target and expected and verify(expected, target, timeout_seconds=None))
    return equal, normal


# -- the shared pool -------------------------------------------------------------------------
_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


_PRELOAD_MODULE = f"{__package__}.math_preload"
# Requested at import, so that a fork server started by any pool (say, a vector env's) forks warm
# math workers too.
request_preload([_PRELOAD_MODULE])


def make_math_pool(num_workers: int | None = None) -> WorkerPool:
    """A new pool set up for math checks (math-verify preloaded, memory-limited workers)."""
    return WorkerPool(num_workers, initializer=_warm_up, preload=[_PRELOAD_MODULE], memory_limit=WORKER_MEMORY)


def math_pool() -> WorkerPool:
    """The process-wide pool every MathVerifier shares, sized by ``REWARDGYM_MATH_WORKERS``
    (default: the CPU count). Created on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = make_math_pool(int(os.environ.get("REWARDGYM_MATH_WORKERS", 0)) or None)
        return _POOL


class _LRU:
    """A small thread-safe LRU map; pickles empty (a cache is not state worth shipping)."""

    def __init__(self, size: int):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["size"])


class MathVerifier(Verifier):
    """Reward 1 when the extracted answer equals ``task.answer`` (a LaTeX or plain string).

    Args:
      time_limit: seconds a check may run before its worker is killed (``reason="timeout"``).
      cache_size: how many (gold, answer) verdicts to remember.
      pool: a WorkerPool to run checks in; default the process-wide ``math_pool()``.
    """

    def __init__(self, time_limit: float = 5.0, cache_size: int = 65_536, pool: WorkerPool | None = None):
        if time_limit <= 0:
            raise ValueError(f"MathVerifier: time_limit must be positive, got {time_limit}")
        self.time_limit = time_limit
        self.pool = pool
        self.cache = _LRU(cache_size)

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verify_batch([completion], [task])[0]

    def verify_batch(self, completions: Sequence[str], tasks: Sequence[Task], *,
                     threads: int | None = None) -> list[Verdict]:
        """Verdicts for many completions; the checks not in the cache run in parallel on the pool
        (whose size, not ``threads``, sets the parallelism)."""
        if len(completions) != len(tasks):
            raise ValueError(f"verify_batch: {len(completions)} completions but {len(tasks)} tasks")
        verdicts: list[Verdict | tuple[str, str]] = [self._prepare(c, t) for c, t in zip(completions, tasks)]
        todo = sorted({v for v in verdicts if isinstance(v, tuple) and self.cache.get(v) is None})
        results = (self.pool or math_pool()).map(judge, todo, timeout=self.time_limit, star=True)
        fresh = {key: self._verdict(result, key[1]) for key, result in zip(todo, results)}
        for key, verdict in fresh.items():
            self.cache.put(key, verdict)
        return [v if isinstance(v, Verdict) else fresh.get(v) or self._cached(v) for v in verdicts]

    def _prepare(self, completion: str, task: Task) -> Verdict | tuple[str, str]:
        """A verdict decided without sympy, or the (gold, answer) pair to check."""
        found = extract_answer(self.clip(completion), boxed=True)
        if found.answer is None:
            return Verdict.wrong(found.reason, candidates=found.candidates)
        answer = found.answer
        if len(answer) > MAX_ANSWER_CHARS:
            return Verdict.wrong(FORMAT_ERROR, answer[:MAX_PARSED_CHARS],
                                 why=f"answer longer than {MAX_ANSWER_CHARS} characters")
        if not answer:
            return Verdict.wrong(FORMAT_ERROR, answer, why="empty answer")
        return str(task.answer), answer

    def _cached(self, key: tuple[str, str]) -> Verdict:
        """The cached verdict of a pair, checked again if it fell out of the cache meanwhile."""
        verdict = self.cache.get(key)
        if verdict is None:
            verdict = self._verdict((self.pool or math_pool()).call(judge, *key, timeout=self.time_limit), key[1])
            self.cache.put(key, verdict)
        return verdict

    def _verdict(self, result: Result, answer: str) -> Verdict:
        if result.status == TIMEOUT:
            return Verdict.wrong(TIMEOUT, answer[:MAX_PARSED_CHARS], why=f"check exceeded {self.time_limit:g} s")
        if not result.ok:
            return Verdict.wrong(RUNTIME_ERROR, answer[:MAX_PARSED_CHARS], why=result.status)
        equal, normal = result.value
        parsed = (normal or answer)[:MAX_PARSED_CHARS]
        return Verdict.right(parsed) if equal else Verdict.wrong(WRONG_ANSWER, parsed)

    def __repr__(self) -> str:
        return f"MathVerifier(time_limit={self.time_limit:g})"
