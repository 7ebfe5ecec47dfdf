"""The two records every part of rewardgym passes around: a Task and the Verdict on a completion."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


#: Verdict reasons shared by every verifier; a verifier may add its own, documented in its module.
OK = "ok"
WRONG_ANSWER = "wrong_answer"
NO_ANSWER = "no_answer"
AMBIGUOUS = "ambiguous"
FORMAT_ERROR = "format_error"
TIMEOUT = "timeout"
RUNTIME_ERROR = "runtime_error"


@dataclass(frozen=True)
class Task:
    """One problem: a pure function of (env kwargs, seed or dataset index).

    `answer` holds whatever the verifier needs as ground truth; `meta` holds the structured
    fields a verifier or a user reads (for countdown: numbers and target). Both must be
    JSON-serialisable so tasks travel between processes and machines unchanged.
    """

    id: str
    prompt: str | list[dict[str, str]]
    answer: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        unknown = set(data) - {"id", "prompt", "answer", "meta"}
        if unknown:
            raise ValueError(f"Task: unknown field(s) {sorted(unknown)}")
        if "id" not in data or "prompt" not in data:
            raise ValueError("Task: 'id' and 'prompt' are required")
        return cls(id=str(data["id"]), prompt=data["prompt"], answer=data.get("answer"),
                   meta=dict(data.get("meta") or {}))

    def fingerprint(self) -> str:
        """A stable text form, used to compare tasks across processes."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True)


@dataclass(frozen=True)
class Verdict:
    """The check of one completion. Bad model output is a verdict, never an exception."""

    reward: float
    correct: bool
    parsed: Any = None
    reason: str = OK
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def wrong(cls, reason: str, parsed: Any = None, **details: Any) -> "Verdict":
        return cls(reward=0.0, correct=False, parsed=parsed, reason=reason, details=details)

    @classmethod
    def right(cls, parsed: Any = None, reward: float = 1.0, **details: Any) -> "Verdict":
        return cls(reward=reward, correct=True, parsed=parsed, reason=OK, details=details)
