"""Reward wrappers for single environments; the shapers themselves live in ``rewardgym.shaping``."""

from __future__ import annotations

import gymnasium as gym

from .shaping import R1Format, RewardShaping


class FormatBonus(RewardShaping):
    """R1-Zero's accuracy + format reward: ``weight`` extra when the completion follows the R1
    template, logged as ``info["reward_components"][name]``. With ``think_prefilled=True`` the
    prompt ends inside ``<think>`` (TinyZero style), so the completion is checked as if it began
    with ``<think>``. Wrappers compose: ``FormatBonus(FormatBonus(env, 0.1), 0.05, name="f2")``."""

    def __init__(self, env: gym.Env, weight: float = 0.1, *, think_prefilled: bool = False, name: str = "format"):
        super().__init__(env, R1Format(weight, think_prefilled, name))
