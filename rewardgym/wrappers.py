"""Reward wrappers that add shaped components on top of any rewardgym environment.

Each wrapper adds one named entry to ``info["reward_components"]`` (its weighted
contribution) and adds it to the reward, so the components always sum to the reward and a
learner can log them separately. Wrappers compose: ``FormatBonus(SomeOther(env))``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from .verifiers.compose import R1FormatVerifier


class FormatBonus(gym.Wrapper):
    """R1-Zero's format reward: ``weight`` extra when the completion follows the R1 template.

    With ``think_prefilled=True`` the prompt ends inside ``<think>`` (TinyZero style), so the
    completion is checked as if it began with ``<think>``.
    """

    def __init__(self, env: gym.Env, weight: float = 0.1, *, think_prefilled: bool = False, name: str = "format"):
        super().__init__(env)
        self.weight, self.name = float(weight), name
        self.check = R1FormatVerifier(think_prefilled=think_prefilled)

    def step(self, action: str) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        bonus = self.weight * self.check.verify(action, info["task"]).reward
        components = dict(info.get("reward_components") or {"correctness": float(reward)})
        components[self.name] = bonus
        return obs, float(reward) + bonus, terminated, truncated, {**info, "reward_components": components}
