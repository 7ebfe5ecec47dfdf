"""The Verifier contract: ``verify(completion, task) -> Verdict``, deterministic and bounded."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .types import Task, Verdict


class Verifier(ABC):
    """Base class for every check.

    ``time_limit`` is the promise a verifier makes: every call returns within it, whatever
    the completion holds. In-process verifiers keep it by construction (bounded parsing, no
    evaluation of model text); verifiers that could hang run in a killable worker pool.
    ``max_chars`` caps the completion length looked at; longer text is judged on its tail,
    where the answer lives, and the verdict records the truncation.
    """

    time_limit: float = 1.0
    max_chars: int = 200_000

    @abstractmethod
    def verify(self, completion: str, task: Task) -> Verdict:
        """Judge one completion. Must not raise for any string ``completion``."""

    def clip(self, completion: str) -> str:
        return completion if len(completion) <= self.max_chars else completion[-self.max_chars:]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
