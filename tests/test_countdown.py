"""Countdown: generator (pure, solvable, configurable) and verifier (safe, exact) against hand cases."""

from __future__ import annotations

import random
import time

import pytest

import rewardgym
from rewardgym.core import Task
from rewardgym.envs.countdown import CountdownEnv, signed_sum, solve_backwards
from rewardgym.verifiers.countdown import CountdownVerifier, evaluate

V = CountdownVerifier()


def task(numbers, target, use_all=True, operators="+-*/"):
    return Task(id="t", prompt="", answer=target,
                meta={"numbers": numbers, "target": target, "use_all": use_all, "operators": operators})


def score(expr: str, numbers=(25, 5, 4, 1), target=81, **kw):
    return V.verify(f"<answer>{expr}</answer>", task(list(numbers), target, **kw))


def test_hand_cases() -> None:
    assert score("(25-5)*4+1").correct
    assert score("1+(25-5)*4").correct
    assert score("(25 - 5) * 4 + 1 = 81").correct
    assert score("25*4-5*4+1").reason == "wrong_numbers"
    assert score("25+5+4+1").reason == "wrong_answer"
    assert score("(25-5)*4").reason == "wrong_numbers"


def test_exact_rational_arithmetic() -> None:
    value, literals = evaluate("7/3*3")
    assert value == 7 and literals == [7, 3, 3]
    assert score("(7/2+1/2)*2", numbers=(7, 2, 1, 2, 2), target=8).correct
    assert score("1/3+1/3+1/3", numbers=(1, 3, 1, 3, 1, 3), target=1).correct


@pytest.mark.parametrize("expr, reason", [
    ("29e0", "format_error"), ("0x1d", "format_error"), ("0e0*25", "format_error"), ("1_0", "format_error"),
    ("__import__('os').system('true')", "format_error"), ("2**3", "format_error"), ("2^3", "format_error"),
    ("9**9**9", "format_error"), ("+25-5*4+1", "format_error"), ("25//5", "format_error"), ("25.0", "format_error"),
    ("(25-5)*4+1 = 82", "format_error"), ("1 = 1 = 1", "format_error"), ("25/(5-5)", "division_by_zero"),
    ("١٢٣", "format_error"), ("(" * 300, "format_error"),
])
def test_holes_score_zero(expr: str, reason: str) -> None:
    verdict = score(expr)
    assert (verdict.reward, verdict.reason) == (0.0, reason)


def test_unary_minus_is_allowed() -> None:
    assert score("-(-(25-5)*4)+1").correct
    assert score("1 - -(25-5)*4").correct
    assert score("-25+5*4+1").reason == "wrong_answer"


def test_power_bomb_returns_promptly() -> None:
    start = time.perf_counter()
    for _ in range(100):
        assert score("9**9**9**9**9").reward == 0
    assert time.perf_counter() - start < 1.0


def test_use_all_false_allows_a_subset_but_no_reuse() -> None:
    assert score("25*4-20", numbers=(25, 4, 20, 3), target=80, use_all=False).correct
    assert score("25*4-4*5", numbers=(25, 4, 20, 5), target=80, use_all=False).reason == "wrong_numbers"


def test_operator_restriction() -> None:
    assert score("25*4-5*4", numbers=(25, 4, 5, 4), target=80, operators="+-").reason == "format_error"


def test_generation_is_pure_and_solvable() -> None:
    env = CountdownEnv(num_numbers=[3, 5], max_number=50, min_target=10, max_target=60)
    for seed in range(300):
        t = env.generate(seed)
        assert t == env.generate(seed)
        assert 3 <= len(t.meta["numbers"]) <= 5 and 10 <= t.meta["target"] <= 60
        assert all(1 <= n <= 50 for n in t.meta["numbers"])
        assert V.verify(env.reference(t), t).correct


def test_signed_sum_by_hand() -> None:
    # 76 + 70 - 48 - 17 = 81: larger numbers first, additions before subtractions
    assert signed_sum([17, 70, 48, 76], 81) == "76 + 70 - 48 - 17"
    assert signed_sum([53, 48, 29, 1], 25) == "48 + 29 + 1 - 53"  # the largest may be subtracted
    assert signed_sum([2, 3], 6) is None  # needs *
    assert signed_sum([5, 3], 8, operators="+") == "5 + 3" and signed_sum([5, 3], 2, operators="+*") is None
    assert signed_sum([5, 3], 2, operators="*") is None


def test_reference_prefers_the_signed_sum_and_falls_back_to_the_generators_solution() -> None:
    env = rewardgym.make("Countdown-v0").unwrapped
    t = env.generate(7)  # numbers [13, 71, 92, 9], target 1
    assert env.reference(t) == "<think>71 + 13 + 9 - 92 = 1</think>\n<answer>71 + 13 + 9 - 92</answer>"
    only_products = task([2, 3], 6)
    only_products.meta["solution"] = "2 * 3"
    assert env.reference(only_products).endswith("<answer>2 * 3</answer>")


def test_a_wrong_value_reports_its_distance_from_the_target() -> None:
    verdict = score("25+5+4+1")  # 35, target 81
    assert verdict.details == {"value": "35", "distance": 46.0}
    assert score("(25-5)/4+1").details["distance"] == 75.0  # 6


def test_known_seed_value() -> None:
    # Pinned so a change to the generator (which must bump the env version) is noticed.
    t = rewardgym.make("Countdown-v0").unwrapped.generate(7)
    assert (t.meta["numbers"], t.meta["target"], t.meta["solution"]) == ([13, 71, 92, 9], 1, "13 + 9 + 71 - 92")


def test_solve_backwards_respects_operators() -> None:
    rng = random.Random(0)
    for _ in range(200):
        found = solve_backwards(rng, [3, 4, 5], "+*", (1, 1000))
        if found:
            assert "-" not in found[1] and "/" not in found[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_numbers": 1}, "num_numbers"), ({"operators": "+%"}, "operators"),
    ({"min_target": 10, "max_target": 5}, "min_target"), ({"min_number": 0}, "min_number"),
])
def test_bad_config_is_a_clear_error(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        CountdownEnv(**kwargs)


def test_impossible_range_fails_clearly() -> None:
    env = CountdownEnv(num_numbers=2, max_number=2, operators="+", min_target=50, max_target=60)
    with pytest.raises(RuntimeError, match="no solvable task"):
        env.generate(0)
