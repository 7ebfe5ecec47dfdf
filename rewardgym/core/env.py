"""TextEnv: the gymnasium.Env every rewardgym environment is.

An episode is one task. ``reset`` draws the task (from a seed, a dataset index, or a task
passed in ``options``) and returns its prompt; ``step(completion)`` asks the verifier and
returns the verdict's reward. Single-turn environments terminate after that one step.
"""

from __future__ import annotations

import random
import string
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces

from . import prompts
from .registry import load_object
from .types import Task, Verdict
from .verifier import Verifier

MAX_TEXT = 1_000_000


class DataRequired(ValueError):
    """A dataset-backed env was made without its data; the message says where to get it."""


class MissingExtra(ImportError):
    """An env needs an optional package; the message names the pip extra that installs it."""


class UnicodeText(spaces.Text):
    """A Text space that holds any string up to ``max_length`` characters.

    gymnasium's Text checks every character against a finite charset; prompts and
    completions are arbitrary Unicode, so membership only checks type and length.
    Sampling still draws from printable ASCII.
    """

    def __init__(self, max_length: int = MAX_TEXT, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


class TextEnv(gym.Env[str, str]):
    """Base class. Subclasses implement ``generate(seed)`` (procedural) or ``__len__`` and
    ``task_at(index)`` (dataset-backed), and ``reference(task)``.

    Keyword arguments every environment takes:
      verifier: a Verifier, or ``"module:Class"`` (the registry passes its ``verifier`` field).
      template: prompt template name (see ``rewardgym.core.prompts``).
      chat: when true, ``Task.prompt`` is a list of chat messages instead of a string.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    default_verifier: str | None = None

    def __init__(self, *, verifier: Verifier | str | None = None, template: str = "r1",
                 chat: bool = False, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        prompts.instruction(template)  # fails early on an unknown template name
        self.template, self.chat, self.render_mode = template, chat, render_mode
        self.verifier = _make_verifier(verifier or self.default_verifier, type(self).__name__)
        self.observation_space = UnicodeText()
        self.action_space = UnicodeText()
        self._task: Task | None = None
        self._completion: str | None = None
        self._done = True

    # -- what subclasses provide -------------------------------------------------------
    def generate(self, seed: int) -> Task:
        """The task for a seed: a pure function of (constructor kwargs, seed)."""
        if self.num_tasks is None:
            raise NotImplementedError(f"{type(self).__name__} must implement generate(seed)")
        return self.task_at(random.Random(seed).randrange(self.num_tasks))

    def task_at(self, index: int) -> Task:
        raise TypeError(f"{type(self).__name__} is procedural: select tasks with reset(seed=...)")

    @property
    def num_tasks(self) -> int | None:
        """Number of tasks for dataset-backed envs; None for procedural ones."""
        return None

    def reference(self, task: Task) -> str | None:
        """A completion that earns full reward on ``task`` (for tests and cold-start SFT data)."""
        return None

    # -- helpers for subclasses --------------------------------------------------------
    def make_prompt(self, question: str) -> str | list[dict[str, str]]:
        return prompts.messages(question, self.template) if self.chat else prompts.render(question, self.template)

    # -- gymnasium API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "task" in options:
            task = options["task"]
            task = task if isinstance(task, Task) else Task.from_dict(task)
        elif "index" in options:
            task = self.task_at(int(options["index"]))
        else:
            task = self.generate(seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1)))
        self._task, self._completion, self._done = task, None, False
        info: dict[str, Any] = {"task": task}
        if isinstance(task.prompt, list):
            info["messages"] = task.prompt
        return prompts.as_text(task.prompt), info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise gym.error.ResetNeeded("call reset() before step(); this environment is single-turn")
        if not isinstance(action, str):
            raise TypeError(f"step() takes the completion as str, got {type(action).__name__}")
        verdict = self.verify(action, self._task)
        self._completion, self._done = action, True
        info = {"task": self._task, "verdict": verdict, "reward_components": {"correctness": verdict.reward}}
        return "", float(verdict.reward), True, False, info

    def verify(self, completion: str, task: Task) -> Verdict:
        return self.verifier.verify(completion, task)

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        text = prompts.as_text(self._task.prompt)
        return text if self._completion is None else f"{text}\n{self._completion}"

    @property
    def task(self) -> Task | None:
        return self._task


def _make_verifier(spec: Verifier | str | None, owner: str) -> Verifier:
    if spec is None:
        raise ValueError(f"{owner}: no verifier given and no default_verifier set")
    if isinstance(spec, Verifier):
        return spec
    obj = load_object(spec, where=f"{owner} verifier")
    verifier = obj() if isinstance(obj, type) else obj
    if not isinstance(verifier, Verifier):
        raise TypeError(f"{owner}: verifier {spec!r} is not a rewardgym Verifier")
    return verifier
