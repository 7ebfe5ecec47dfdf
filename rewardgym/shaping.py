"""Reward shaping: extra reward components from the seed papers, composable over any env.

A *shaper* maps a batch of (completion, verdict, group) to one unweighted value per completion.
``RewardShaping`` (single env) and ``VectorRewardShaping`` (vector env) add ``weight * value``
for each shaper to the reward and log it under the shaper's name in ``reward_components``, so
the components always sum to the reward. Shapers:

``KimiLengthPenalty``  Kimi k1.5: within a group, lambda = 0.5 - (len - min) / (max - min); a correct
                       completion gets lambda, a wrong one min(0, lambda). Needs groups (vector env).
``OverlongPenalty``    DAPO's soft overlong punishment: 0 up to ``max_length - cache``, then a linear
                       ramp to -1 at ``max_length``, -1 beyond.
``LanguageConsistency`` DeepSeek-R1: the share of the reasoning (``<think>`` block, else the whole
                       text) written in ``language``, measured per sentence with ``langdetect``.
``RepetitionPenalty``  minus the share of repeated word n-grams, for degenerate loops.
``Closeness``          for a wrong answer whose verdict reports its ``distance`` from the target
                       (countdown does), 1 - distance / scale, floored at 0: partial credit that gives
                       a group reward variance when no sample is right yet (0 for right answers).
``R1Format``           1 when the completion is exactly ``<think>...</think><answer>...</answer>``
                       (R1-Zero's format reward; ``rewardgym.wrappers.FormatBonus`` applies it).

Lengths are in characters unless a ``length`` function (e.g. a tokenizer's) is given.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, SupportsFloat

import gymnasium as gym
import numpy as np

from .core.answer import follows_r1_template
from .core.types import Verdict

Length = Callable[[str], int]


class Shaper:
    name: str = "shaping"
    weight: float = 1.0

    def values(self, completions: Sequence[str], verdicts: Sequence[Verdict], groups: Sequence[int]) -> list[float]:
        raise NotImplementedError


class KimiLengthPenalty(Shaper):
    name = "length"

    def __init__(self, weight: float = 0.1, length: Length = len):
        self.weight, self.length = weight, length

    def values(self, completions, verdicts, groups):
        lengths = np.array([self.length(c) for c in completions], dtype=float)
        out = [0.0] * len(completions)
        for group in set(groups):
            members = [i for i, g in enumerate(groups) if g == group]
            lo, hi = lengths[members].min(), lengths[members].max()
            if hi == lo:
                continue
            for i in members:
                lam = 0.5 - (lengths[i] - lo) / (hi - lo)
                out[i] = float(lam) if verdicts[i].correct else float(min(0.0, lam))
        return out


class OverlongPenalty(Shaper):
    name = "overlong"

    def __init__(self, max_length: int, cache: int, weight: float = 1.0, length: Length = len):
        if not 0 < cache <= max_length:
            raise ValueError(f"OverlongPenalty: need 0 < cache <= max_length, got cache={cache}, max_length={max_length}")
        self.max_length, self.cache, self.weight, self.length = max_length, cache, weight, length

    def values(self, completions, verdicts, groups):
        free = self.max_length - self.cache
        out = []
        for c in completions:
            n = self.length(c)
            out.append(0.0 if n <= free else (free - n) / self.cache if n <= self.max_length else -1.0)
        return out


_SENTENCE = re.compile(r"[^.!?。！？\n]+")
_LETTER = re.compile(r"[^\W\d_]")


class LanguageConsistency(Shaper):
    name = "language"

    def __init__(self, language: str = "en", weight: float = 0.1):
        try:
            from langdetect import DetectorFactory, detect_langs
            from langdetect.lang_detect_exception import LangDetectException
        except ImportError as exc:
            raise ImportError("LanguageConsistency needs langdetect: pip install 'rewardgym[shaping]'") from exc
        DetectorFactory.seed = 0  # langdetect samples at random; fixed seed = deterministic verdicts
        self._detect, self._error = detect_langs, LangDetectException
        self.language, self.weight = language, weight

    def share(self, text: str) -> float:
        """Share of letters in sentences whose most likely language is the target."""
        start, end = text.find("<think>"), text.find("</think>")
        if start != -1 and end > start:
            text = text[start + len("<think>"):end]
        total = matched = 0
        for sentence in _SENTENCE.findall(text[:20_000]):
            letters = len(_LETTER.findall(sentence))
            if letters < 3:
                continue
            total += letters
            try:
                best = self._detect(sentence)[0].lang
            except self._error:
                continue
            matched += letters if best.split("-")[0] == self.language else 0
        return matched / total if total else 0.0

    def values(self, completions, verdicts, groups):
        return [self.share(c) for c in completions]


class RepetitionPenalty(Shaper):
    name = "repetition"

    def __init__(self, ngram: int = 4, weight: float = 0.5):
        self.ngram, self.weight = ngram, weight

    def value(self, text: str) -> float:
        words = text.split()[:20_000]
        grams = [tuple(words[i:i + self.ngram]) for i in range(len(words) - self.ngram + 1)]
        return -(1 - len(set(grams)) / len(grams)) if grams else 0.0

    def values(self, completions, verdicts, groups):
        return [self.value(c) for c in completions]


class Closeness(Shaper):
    name = "closeness"

    def __init__(self, weight: float = 0.5, scale: float = 50.0):
        if scale <= 0:
            raise ValueError(f"Closeness: scale must be > 0, got {scale}")
        self.weight, self.scale = weight, scale

    def value(self, verdict: Verdict) -> float:
        distance = verdict.details.get("distance")
        if verdict.correct or distance is None:
            return 0.0
        return max(0.0, 1.0 - float(distance) / self.scale)

    def values(self, completions, verdicts, groups):
        return [self.value(v) for v in verdicts]


class R1Format(Shaper):
    name = "format"

    def __init__(self, weight: float = 0.1, think_prefilled: bool = False, name: str = "format"):
        self.weight, self.think_prefilled, self.name = weight, think_prefilled, name

    def values(self, completions, verdicts, groups):
        return [float(follows_r1_template(c, think_prefilled=self.think_prefilled)) for c in completions]


def _apply(shapers: Sequence[Shaper], completions: Sequence[str], verdicts: Sequence[Verdict],
           groups: Sequence[int], rewards: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shaped rewards and each shaper's weighted contribution (an array per shaper name)."""
    rewards = np.array(rewards, dtype=np.float64)
    added = {}
    for shaper in shapers:
        added[shaper.name] = shaper.weight * np.array(shaper.values(completions, verdicts, groups), dtype=np.float64)
        rewards += added[shaper.name]
    return rewards, added


class RewardShaping(gym.Wrapper):
    """Shapers on a single env (each completion is its own group)."""

    def __init__(self, env: gym.Env, *shapers: Shaper):
        super().__init__(env)
        self.shapers = shapers

    def step(self, action: str) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        components = dict(info.get("reward_components") or {"correctness": float(reward)})
        for shaper in self.shapers:
            components[shaper.name] = shaper.weight * shaper.values([action], [info["verdict"]], [0])[0]
        return obs, float(sum(components.values())), terminated, truncated, {**info, "reward_components": components}


class VectorRewardShaping(gym.vector.VectorWrapper):
    """Shapers on a rewardgym vector env; group-aware shapers see ``info["group"]``."""

    def __init__(self, env: gym.vector.VectorEnv, *shapers: Shaper):
        super().__init__(env)
        self.shapers = shapers

    def step(self, actions: Sequence[str]):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        shaped, added = _apply(self.shapers, list(actions), list(info["verdict"]), list(info["group"]), rewards)
        components = dict(info["reward_components"])
        for name, values in added.items():
            components[name], components["_" + name] = values, info["_verdict"]
        return obs, shaped, terminated, truncated, {**info, "reward_components": components}
