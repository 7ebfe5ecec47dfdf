"""rewardgym: verifiable-reward environments with the Gymnasium API.

Importing the package registers every id in ``registry.yaml`` with gymnasium, so
``gym.make("rewardgym/Countdown-v0")`` and ``rewardgym.make("Countdown-v0")`` give the same env.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym

from .core import EnvEntry, Task, TextEnv, Verdict, Verifier, load_object, load_registry
from .vector import TextVectorEnv, VectorEntryPoint

__version__ = "0.1.0"
NAMESPACE = "rewardgym"
REGISTRY_PATH = Path(__file__).with_name("registry.yaml")

_ENTRIES: dict[str, EnvEntry] = {e.id: e for e in load_registry(REGISTRY_PATH)}


def _register(entry: EnvEntry) -> None:
    if entry.id in gym.registry:
        return
    gym.register(id=entry.id, entry_point=entry.entry_point, vector_entry_point=VectorEntryPoint(entry.id),
                 kwargs={**entry.kwargs, "verifier": entry.verifier})


for _entry in _ENTRIES.values():
    _register(_entry)


def full_id(env_id: str) -> str:
    """Accept ``Countdown-v0`` as shorthand for ``rewardgym/Countdown-v0``."""
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def spec(env_id: str) -> EnvEntry:
    """The registry entry of an id; the error lists close matches."""
    env_id = full_id(env_id)
    if env_id not in _ENTRIES:
        import difflib
        close = difflib.get_close_matches(env_id, list(_ENTRIES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `rewardgym list` to see all ids"
        raise gym.error.UnregisteredEnv(f"unknown environment id {env_id!r}{hint}")
    return _ENTRIES[env_id]


def list_envs(tag: str | None = None) -> list[EnvEntry]:
    """Every registered environment (optionally only those carrying ``tag``), sorted by id."""
    return sorted((e for e in _ENTRIES.values() if tag is None or tag in e.tags), key=lambda e: e.id)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """Same as ``gymnasium.make`` for a rewardgym id (namespace optional)."""
    return gym.make(spec(env_id).id, **kwargs)


def make_vec(env_id: str | Mapping[str, float], num_envs: int = 1, *, group_size: int = 1,
             remote: str | None = None, **kwargs: Any) -> TextVectorEnv:
    """A batch env: ``num_envs / group_size`` tasks, each repeated ``group_size`` times, verified
    in parallel (see ``rewardgym.vector``). ``env_id`` may be ``{id: weight}`` for a mixture;
    ``remote`` is the URL of a ``rewardgym serve`` service. ``gym.make_vec(id, n, ...)`` gives the same."""
    if isinstance(env_id, str):
        return gym.make_vec(spec(env_id).id, num_envs=num_envs, group_size=group_size, remote=remote, **kwargs)
    return TextVectorEnv(env_id, num_envs, group_size=group_size, remote=remote, **kwargs)


@lru_cache(maxsize=None)
def verifier(env_id: str) -> Verifier:
    """The registered verifier of an id (one shared instance per process)."""
    return load_object(spec(env_id).verifier, where=f"{env_id} verifier")()


def score(env_id: str, completions: Sequence[str], tasks: Task | dict | Sequence[Task | dict]) -> list[Verdict]:
    """Verdicts for completions on tasks you already hold: the stateless fast path.
    ``tasks`` is one task for all completions or one per completion (Task or its dict form)."""
    if isinstance(tasks, (Task, dict)):
        tasks = [tasks] * len(completions)
    tasks = [t if isinstance(t, Task) else Task.from_dict(t) for t in tasks]
    return verifier(env_id).verify_batch(list(completions), tasks)


__all__ = ["EnvEntry", "Task", "TextEnv", "TextVectorEnv", "Verdict", "Verifier", "full_id", "list_envs", "make",
           "load_object", "make_vec", "score", "spec", "verifier"]
