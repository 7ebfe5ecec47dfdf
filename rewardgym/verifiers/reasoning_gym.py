"""reasoning-gym's scorers behind our contract: in a killable worker, bounded, never raising.

The item is rebuilt from ``meta["rg"]`` in the worker (items hold objects that do not travel),
then scored with the dataset's ``score_answer`` on the extracted answer. reasoning-gym gives small
partial scores (0.01, 0.05) to wrong or unparsable answers; by default the reward is 1.0 for a
full score and 0.0 otherwise (``details["rg_score"]`` keeps the raw value); with
``partial_credit=True`` the raw score is the reward.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Sequence

from ..core.answer import extract_answer
from ..core.types import NO_ANSWER, RUNTIME_ERROR, TIMEOUT, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier
from ..core.workers import WorkerPool

MAX_ANSWER_CHARS = 20_000
_POOL: WorkerPool | None = None
_LOCK = threading.Lock()


def _import_rg() -> None:
    import reasoning_gym  # noqa: F401  (warm the worker once)


def _score(dataset: str, config: dict[str, Any], seed: int, answer: str) -> float:
    from ..envs.reasoning_gym import rg_item

    data, item = rg_item(dataset, config, seed)
    return float(data.score_answer(answer, item))


def rg_pool() -> WorkerPool:
    """The process-wide pool for reasoning-gym scorers (``REWARDGYM_RG_WORKERS``, default CPU count)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            workers = int(os.environ.get("REWARDGYM_RG_WORKERS", 0)) or os.cpu_count() or 1
            _POOL = WorkerPool(workers, initializer=_import_rg, memory_limit=4 * 1024**3)
        return _POOL


class ReasoningGymVerifier(Verifier):
    time_limit = 5.0
    offloaded = True

    def __init__(self, partial_credit: bool = False):
        from ..envs.reasoning_gym import factory

        factory()  # raises MissingExtra with the install hint when reasoning-gym is absent
        self.partial_credit = partial_credit

    def _job(self, completion: str, task: Task) -> Verdict | tuple:
        found = extract_answer(self.clip(completion))
        if found.answer is None:
            return Verdict.wrong(found.reason)
        answer = found.answer.strip()
        if not answer:
            return Verdict.wrong(NO_ANSWER)
        rg = task.meta["rg"]
        return (rg["dataset"], rg["config"], rg["seed"], answer[:MAX_ANSWER_CHARS])

    def _verdict(self, result: Any, answer: str) -> Verdict:
        if result.status == TIMEOUT:
            return Verdict.wrong(TIMEOUT, answer[:200], why=f"scorer exceeded {self.time_limit:g} s")
        if not result.ok:
            return Verdict.wrong(RUNTIME_ERROR, answer[:200], why=result.error[:300])
        score = result.value
        reward = score if self.partial_credit else float(score >= 1.0)
        return Verdict(reward=reward, correct=score >= 1.0, parsed=answer[:200],
                       reason="ok" if score >= 1.0 else WRONG_ANSWER, details={"rg_score": score})

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verify_batch([completion], [task])[0]

    def verify_batch(self, completions: Sequence[str], tasks: Sequence[Task], *,
                     threads: int | None = None) -> list[Verdict]:
        if len(completions) != len(tasks):
            raise ValueError(f"verify_batch: {len(completions)} completions but {len(tasks)} tasks")
        jobs = [self._job(c, t) for c, t in zip(completions, tasks)]
        todo = [j for j in jobs if isinstance(j, tuple)]
        results = iter(rg_pool().map(_score, todo, timeout=self.time_limit, star=True) if todo else [])
        return [j if isinstance(j, Verdict) else self._verdict(next(results), j[3]) for j in jobs]
