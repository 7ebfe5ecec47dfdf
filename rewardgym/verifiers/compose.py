"""Weighted sums of verifiers: R1-Zero's "accuracy + format" reward as one Verifier.

The first component is the primary check: its ``correct``, ``parsed`` and ``reason`` are the
composite's. The reward is the weighted sum of every component's reward, and each weighted
contribution is reported in ``details["components"]`` so learners can log them apart.
"""

from __future__ import annotations

from ..core.answer import follows_r1_template
from ..core.types import FORMAT_ERROR, Task, Verdict
from ..core.verifier import Verifier


class R1FormatVerifier(Verifier):
    """1.0 when the completion is exactly ``<think>...</think><answer>...</answer>``, else 0.0."""

    time_limit = 0.1

    def __init__(self, think_prefilled: bool = False):
        self.think_prefilled = think_prefilled

    def verify(self, completion: str, task: Task) -> Verdict:
        if follows_r1_template(self.clip(completion), think_prefilled=self.think_prefilled):
            return Verdict.right()
        return Verdict.wrong(FORMAT_ERROR)


class WeightedSum(Verifier):
    """``WeightedSum({"correctness": (v, 1.0), "format": (R1FormatVerifier(), 0.1)})``."""

    def __init__(self, components: dict[str, tuple[Verifier, float]]):
        if not components:
            raise ValueError("WeightedSum needs at least one component")
        self.components = dict(components)
        self.time_limit = sum(v.time_limit for v, _ in self.components.values())

    def verify(self, completion: str, task: Task) -> Verdict:
        parts = {name: (v.verify(completion, task), w) for name, (v, w) in self.components.items()}
        primary = next(iter(parts.values()))[0]
        contributions = {name: verdict.reward * w for name, (verdict, w) in parts.items()}
        return Verdict(reward=sum(contributions.values()), correct=primary.correct, parsed=primary.parsed,
                       reason=primary.reason, details={**primary.details, "components": contributions})

    def __repr__(self) -> str:
        return f"WeightedSum({ {k: (v, w) for k, (v, w) in self.components.items()} })"
