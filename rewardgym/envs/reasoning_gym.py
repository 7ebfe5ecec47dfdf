"""The reasoning-gym bridge: every reasoning-gym dataset as ``rewardgym/rg-<name>-v0``.

A task is reasoning-gym's item for ``seed`` (its dataset built with that seed, item 0), so it is
a pure function of (dataset, config, seed) like every rewardgym task. The item's metadata goes
into ``Task.meta`` (as JSON) with ``meta["rg"]`` naming how to rebuild it; the verifier rebuilds
the item inside a killable worker and runs reasoning-gym's own scorer there, because several
scorers parse model text with sympy and can hang. Countdown is routed to our own verifier.
Needs ``pip install 'rewardgym[reasoning-gym]'``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ..core.env import MissingExtra, TextEnv
from ..core.types import Task


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


@lru_cache(maxsize=1)
def factory():
    try:
        from reasoning_gym.factory import create_dataset
    except ImportError as exc:
        raise MissingExtra("the reasoning-gym bridge needs reasoning-gym: pip install 'rewardgym[reasoning-gym]'") from exc
    return create_dataset


def rg_item(dataset: str, config: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """(reasoning-gym dataset object, its item) for one seed."""
    data = factory()(dataset, **config, seed=seed, size=1)
    return data, data[0]


class ReasoningGymEnv(TextEnv):
    """One reasoning-gym dataset. ``config`` holds the dataset's own config fields."""

    default_verifier = "rewardgym.verifiers.reasoning_gym:ReasoningGymVerifier"

    def __init__(self, *, dataset: str, config: dict[str, Any] | None = None, **base: Any):
        super().__init__(**base)
        self.dataset, self.config = dataset, dict(config or {})
        factory()  # fail at make() time, with the install hint, when reasoning-gym is missing

    def generate(self, seed: int) -> Task:
        _, item = rg_item(self.dataset, self.config, seed)
        meta = _jsonable(item.get("metadata") or {})
        if not isinstance(meta, dict):
            meta = {"metadata": meta}
        meta["rg"] = {"dataset": self.dataset, "config": _jsonable(self.config), "seed": seed}
        return Task(id=f"rg-{self.dataset}-{seed}", prompt=self.make_prompt(item["question"]),
                    answer=_jsonable(item["answer"]), meta=meta)

    def reference(self, task: Task) -> str | None:
        if task.answer is None:  # datasets whose answers are checked for validity, not against a gold
            return None
        return f"<think>Known answer.</think>\n<answer>{task.answer}</answer>"
