"""Reward shaping and curricula against hand-computed values."""

from __future__ import annotations

import pytest

import rewardgym
from rewardgym.core import Verdict
from rewardgym.curriculum import Curriculum
from rewardgym.shaping import (Closeness, KimiLengthPenalty, LanguageConsistency, OverlongPenalty, RepetitionPenalty,
                               RewardShaping, VectorRewardShaping)

R, W = Verdict.right(), Verdict.wrong("wrong_answer")


def test_kimi_length_penalty_by_hand() -> None:
    # lengths 2, 4, 6, 10 -> lambda 0.5, 0.25, 0.0, -0.5; wrong ones get min(0, lambda)
    values = KimiLengthPenalty().values(["aa", "aaaa", "aaaaaa", "a" * 10], [R, W, R, W], [0, 0, 0, 0])
    assert values == [0.5, 0.0, 0.0, -0.5]
    assert KimiLengthPenalty().values(["ab", "cd"], [R, W], [0, 0]) == [0.0, 0.0]  # equal lengths
    assert KimiLengthPenalty().values(["a", "aaa", "a", "aaa"], [R, R, W, W], [0, 0, 1, 1]) == [0.5, -0.5, 0.0, -0.5]


def test_overlong_penalty_by_hand() -> None:
    shaper = OverlongPenalty(max_length=100, cache=20)
    assert shaper.values(["a" * 80, "a" * 90, "a" * 100, "a" * 120], [], []) == [0.0, -0.5, -1.0, -1.0]
    assert OverlongPenalty(10, 5, length=lambda s: len(s.split())).values(["w " * 8], [], []) == [-0.6]
    with pytest.raises(ValueError, match="cache"):
        OverlongPenalty(10, 20)


def test_repetition_penalty_by_hand() -> None:
    shaper = RepetitionPenalty(ngram=2)
    assert shaper.value("a b a b a b") == pytest.approx(-0.6)  # 5 bigrams, 2 distinct
    assert shaper.value("one two three four") == 0.0 and shaper.value("one") == 0.0


def test_language_consistency_uses_a_real_detector() -> None:
    pytest.importorskip("langdetect")
    shaper = LanguageConsistency("en")
    english = "<think>We add the two numbers first. Then we check the result carefully.</think><answer>3</answer>"
    mixed = "<think>We add the numbers. Dann überprüfen wir das Ergebnis sehr sorgfältig und genau.</think>"
    assert shaper.share(english) == 1.0
    assert 0.1 < shaper.share(mixed) < 0.6
    assert shaper.share(mixed) == LanguageConsistency("en").share(mixed)  # deterministic
    assert LanguageConsistency("de").share(mixed) == pytest.approx(1 - shaper.share(mixed))


def test_closeness_by_hand() -> None:
    near, far, right = Verdict.wrong("wrong_answer", distance=10.0), Verdict.wrong("wrong_answer", distance=80.0), Verdict.right()
    unparsed = Verdict.wrong("format_error")
    assert Closeness(0.5, scale=50).values([""] * 4, [near, far, right, unparsed], [0, 0, 0, 0]) == [0.8, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="scale must be > 0"):
        Closeness(scale=0)


def test_closeness_on_countdown_verdicts() -> None:
    env = VectorRewardShaping(rewardgym.make_vec("Countdown-v0", 2, group_size=2), Closeness(0.5, scale=50))
    _, info = env.reset(seed=[7, 7])  # numbers [13, 71, 92, 9], target 1
    _, rewards, _, _, info = env.step(["<answer>71 + 13 + 9 - 92</answer>", "<answer>71 + 13 - 9 - 92</answer>"])
    assert list(rewards) == [1.0, 0.5 * (1 - 18 / 50)]  # 71 + 13 - 9 - 92 = -17, 18 from the target
    assert list(info["reward_components"]["closeness"]) == [0.0, 0.5 * (1 - 18 / 50)]


def test_single_env_wrapper_components_sum() -> None:
    env = RewardShaping(rewardgym.make("Countdown-v0"), OverlongPenalty(60, 20, weight=0.5), RepetitionPenalty(2, weight=1.0))
    _, info = env.reset(seed=1)
    completion = "<think>" + "x y " * 20 + "</think><answer>1</answer>"
    _, reward, _, _, info = env.step(completion)
    c = info["reward_components"]
    assert c["overlong"] == -0.5 and c["repetition"] < 0 and reward == pytest.approx(sum(c.values()))


def test_vector_wrapper_uses_groups() -> None:
    env = VectorRewardShaping(rewardgym.make_vec("Countdown-v0", 4, group_size=2), KimiLengthPenalty(weight=1.0))
    _, info = env.reset(seed=0)
    ref = rewardgym.make("Countdown-v0").unwrapped
    short, long_ = ref.reference(info["task"][0]), ref.reference(info["task"][0]) + " " * 10
    _, rewards, _, _, info = env.step([short, long_, "x", "xx"])
    assert list(rewards) == [1.5, 0.5, 0.0, -0.5]
    components = info["reward_components"]
    assert list(components["correctness"]) == [1.0, 1.0, 0.0, 0.0] and list(components["length"]) == [0.5, -0.5, 0.0, -0.5]


def _play(curriculum: Curriculum, skill_at, steps: int) -> list[int]:
    ref = rewardgym.make("Countdown-v0").unwrapped
    levels = []
    for step in range(steps):
        _, info = curriculum.reset(seed=step)
        skill = skill_at(step)
        curriculum.step([ref.reference(t) if len(t.meta["numbers"]) <= skill else "x" for t in info["task"]])
        levels.append(curriculum.level)
    return levels


def test_curriculum_difficulty_rises_as_the_policy_improves() -> None:
    curriculum = Curriculum("Countdown-v0", 8, group_size=4, window=4)
    levels = _play(curriculum, lambda step: 3 if step < 12 else 4 if step < 24 else 6, 40)
    assert max(levels[:12]) <= 1 and max(levels[12:24]) <= 2 and levels[-8:] == [3] * 8


def test_curriculum_state_round_trip() -> None:
    first = Curriculum("Countdown-v0", 4, group_size=2, window=4)
    _play(first, lambda step: 6, 6)
    second = Curriculum("Countdown-v0", 4, group_size=2, window=4)
    second.load_state_dict(first.state_dict())
    assert second.level == first.level > 0 and list(second.window) == list(first.window)
    _, info = second.reset(seed=0)
    assert len(info["task"][0].meta["numbers"]) == second.levels[second.level]["num_numbers"]
    with pytest.raises(ValueError, match="no difficulty ladder"):
        Curriculum("Countdown-v0", 2, levels=[])
