"""The Verifier contract: ``verify(completion, task) -> Verdict``, deterministic and bounded."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .types import Task, Verdict


class Verifier(ABC):
    """Base class for every check.

    ``time_limit`` is the promise a verifier makes: every call returns within it, whatever
    the completion holds. In-process verifiers keep it by construction (bounded parsing, no
    evaluation of model text); verifiers that could hang run in a killable worker pool.
    ``max_chars`` caps the completion length looked at; longer text is judged on its tail,
    where the answer lives.

    ``offloaded`` marks verifiers whose work happens in other processes (a killable worker pool,
    a sandbox): calling ``verify`` from many threads at once is safe and runs the checks in
    parallel. In-process verifiers leave it False and batches run inline.
    """

    time_limit: float = 1.0
    max_chars: int = 200_000
    offloaded: bool = False

    @abstractmethod
    def verify(self, completion: str, task: Task) -> Verdict:
        """Judge one completion. Must not raise for any string ``completion``."""

    def verify_batch(self, completions: Sequence[str], tasks: Sequence[Task], *,
                     threads: int | None = None) -> list[Verdict]:
        """Verdicts in order. Offloaded verifiers check items concurrently, so one slow item
        costs its own time limit, not the batch's."""
        if len(completions) != len(tasks):
            raise ValueError(f"verify_batch: {len(completions)} completions but {len(tasks)} tasks")
        if not self.offloaded or len(completions) < 2:
            return [self.verify(c, t) for c, t in zip(completions, tasks)]
        with ThreadPoolExecutor(max_workers=min(len(completions), threads or 4 * (os.cpu_count() or 1))) as ex:
            return list(ex.map(self.verify, completions, tasks))

    def clip(self, completion: str) -> str:
        return completion if len(completion) <= self.max_chars else completion[-self.max_chars:]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
