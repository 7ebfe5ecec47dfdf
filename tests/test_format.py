"""Format envs, the format verifier, the weighted-sum verifier and the format-bonus wrapper."""

from __future__ import annotations

import json

import pytest

import rewardgym
from rewardgym.core import Task
from rewardgym.verifiers.compose import R1FormatVerifier, WeightedSum
from rewardgym.verifiers.countdown import CountdownVerifier
from rewardgym.verifiers.format import FormatVerifier, parse_json, schema_error
from rewardgym.wrappers import FormatBonus

V = FormatVerifier()


@pytest.mark.parametrize("env_id", ["Format-R1Template-v0", "Format-JSONSchema-v0", "Format-FunctionCall-v0"])
def test_references_pass_and_generation_is_pure(env_id: str) -> None:
    env = rewardgym.make(env_id).unwrapped
    for seed in range(100):
        task = env.generate(seed)
        assert task == env.generate(seed)
        assert V.verify(env.reference(task), task).reward == 1.0


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_schema_size_grows_with_difficulty(difficulty: int) -> None:
    env = rewardgym.make("Format-JSONSchema-v0", difficulty=difficulty).unwrapped
    sizes = [len(env.generate(s).answer["properties"]) for s in range(50)]
    assert min(sizes) >= 1 + difficulty and max(sizes) <= 2 + 2 * difficulty


def test_bad_difficulty() -> None:
    with pytest.raises(ValueError, match="difficulty must be 1, 2 or 3"):
        rewardgym.make("Format-JSONSchema-v0", difficulty=7)


def test_schema_error_names_the_path() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    assert schema_error({"a": [1, "x"]}, schema).startswith("at a/1:")
    assert schema_error({"a": [1, 2]}, schema) is None


def test_parse_json_is_bounded() -> None:
    assert parse_json("[" * 100_000)[1] is not None
    assert parse_json("```json\n{\"a\": 1}\n```") == ({"a": 1}, None)
    assert parse_json("1" * 5000)[1] is not None  # over Python's int-string limit: an error, not a crash


def test_function_call_partial_credit() -> None:
    env = rewardgym.make("Format-FunctionCall-v0", difficulty=3).unwrapped
    task = env.generate(4)
    other = next(t for t in task.meta["tools"] if t["name"] != task.answer["name"])
    args = {k: (s["enum"][0] if "enum" in s else s.get("minimum", True)) for k, s in other["parameters"]["properties"].items()}
    verdict = V.verify(f"<answer>{json.dumps({'name': other['name'], 'arguments': args})}</answer>", task)
    assert (verdict.reward, verdict.correct, verdict.reason) == (0.5, False, "wrong_answer")


def test_weighted_sum_reports_components() -> None:
    task = Task(id="t", prompt="", answer=3, meta={"numbers": [1, 2], "target": 3})
    composite = WeightedSum({"correctness": (CountdownVerifier(), 1.0), "format": (R1FormatVerifier(), 0.1)})
    good = composite.verify("<think>1+2</think><answer>1+2</answer>", task)
    assert good.reward == pytest.approx(1.1) and good.details["components"] == {"correctness": 1.0, "format": 0.1}
    bare = composite.verify("<answer>1+2</answer>", task)
    assert bare.reward == 1.0 and bare.correct and bare.details["components"]["format"] == 0.0
    wrong = composite.verify("<think>x</think><answer>1*2</answer>", task)
    assert wrong.reward == pytest.approx(0.1) and not wrong.correct and wrong.reason == "wrong_answer"


def test_format_bonus_wrapper_components_sum_to_reward() -> None:
    env = FormatBonus(FormatBonus(rewardgym.make("Countdown-v0"), 0.2), 0.05, name="format2")
    _, info = env.reset(seed=3)
    _, reward, _, _, info = env.step(env.unwrapped.reference(info["task"]))
    assert info["reward_components"] == {"correctness": 1.0, "format": 0.2, "format2": 0.05}
    assert reward == pytest.approx(sum(info["reward_components"].values()))
    env.reset(seed=3)
    _, reward, _, _, info = env.step("<think>guess</think><answer>1</answer>")
    assert reward == pytest.approx(0.25) and info["verdict"].reward == 0.0
