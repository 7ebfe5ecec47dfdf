"""Core contracts: Task/Verdict, the answer rule, prompts, registry validation, the TextEnv API."""

from __future__ import annotations

import textwrap

import gymnasium as gym
import pytest

import rewardgym
from rewardgym.core import RegistryError, Task, Verdict, extract_answer, follows_r1_template, load_registry
from rewardgym.core import prompts
from rewardgym.core.answer import boxed_contents


def test_task_round_trip_and_errors() -> None:
    task = Task(id="a", prompt="p", answer=3, meta={"x": [1]})
    assert Task.from_dict(task.to_dict()) == task
    with pytest.raises(ValueError, match="unknown field"):
        Task.from_dict({"id": "a", "prompt": "p", "extra": 1})
    with pytest.raises(ValueError, match="required"):
        Task.from_dict({"prompt": "p"})


def test_verdict_constructors() -> None:
    assert Verdict.right("x") == Verdict(1.0, True, "x", "ok", {})
    assert Verdict.wrong("no_answer", why="w") == Verdict(0.0, False, None, "no_answer", {"why": "w"})


@pytest.mark.parametrize("text, answer, reason", [
    ("<answer>42</answer>", "42", "ok"),
    ("<answer> 1 </answer> then <answer>2</answer>", None, "ambiguous"),
    ("<answer>2</answer> again <answer> 2 </answer>", "2", "ok"),
    ("<answer>2", None, "no_answer"),
    ("<answer>1</answer><answer>2", "1", "ok"),
    ("<ANSWER>2</ANSWER>", None, "no_answer"),
    ("no tags", None, "no_answer"),
])
def test_answer_rule(text: str, answer: str | None, reason: str) -> None:
    found = extract_answer(text)
    assert (found.answer, found.reason) == (answer, reason)


def test_boxed_fallback_only_without_answer_block() -> None:
    assert extract_answer("so \\boxed{\\frac{1}{2}}", boxed=True).answer == "\\frac{1}{2}"
    assert extract_answer("so \\boxed{\\frac{1}{2}}").answer is None
    assert extract_answer("\\boxed{3} <answer>4</answer>", boxed=True).answer == "4"
    assert extract_answer("\\boxed{3} or maybe \\boxed{4}", boxed=True).reason == "ambiguous"
    assert boxed_contents("\\boxed{a{b}c} \\fbox {d} \\boxed{unclosed") == ["a{b}c", "d"]


@pytest.mark.parametrize("text, ok", [
    ("<think>a</think><answer>b</answer>", True),
    ("  <think>a</think>\n\n<answer>b</answer>\n", True),
    ("<think>a</think> x <answer>b</answer>", False),
    ("<think> </think><answer>b</answer>", False),
    ("<think>a</think><answer>b</answer> trailing", False),
    ("<think>a<think>b</think><answer>c</answer>", False),
    ("<answer>b</answer><think>a</think>", False),
])
def test_r1_template(text: str, ok: bool) -> None:
    assert follows_r1_template(text) is ok


def test_r1_template_with_prefilled_think() -> None:
    assert follows_r1_template("reasoning</think><answer>5</answer>", think_prefilled=True)
    assert not follows_r1_template("reasoning</think><answer>5</answer>")


def test_prompts_forms() -> None:
    msgs = prompts.messages("Q?", "plain")
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == "Q?"
    assert prompts.render("Q?", "r1").endswith("User: Q?\nAssistant:")
    with pytest.raises(ValueError, match="unknown prompt template 'zzz'"):
        prompts.render("Q?", "zzz")


def _registry(tmp_path, body: str):
    path = tmp_path / "registry.yaml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """\
- id: rewardgym/Foo-v0
  entry_point: rewardgym.envs.countdown:CountdownEnv
  verifier: rewardgym.verifiers.countdown:CountdownVerifier
  description: foo
"""


def test_registry_loads_a_good_file(tmp_path) -> None:
    (entry,) = load_registry(_registry(tmp_path, GOOD + "  kwargs: {num_numbers: 3}\n  tags: [a]\n"))
    assert entry.id == "rewardgym/Foo-v0" and entry.kwargs == {"num_numbers": 3} and entry.tags == ("a",)
    assert entry.name == "Foo-v0"


@pytest.mark.parametrize("extra, field, problem", [
    ("  colour: red\n", "colour", "unknown field"),
    ("", "id", "duplicate id"),
])
def test_registry_errors_name_file_entry_field(tmp_path, extra, field, problem) -> None:
    body = GOOD + extra + (GOOD if problem == "duplicate id" else "")
    path = _registry(tmp_path, body)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message and "rewardgym/Foo-v0" in message and f"field '{field}'" in message
    assert problem in message


def test_registry_missing_entry_point_and_bad_version(tmp_path) -> None:
    with pytest.raises(RegistryError, match=r"registry.yaml:1: entry #0 \(rewardgym/Foo-v0\), field 'entry_point': missing"):
        load_registry(_registry(tmp_path, GOOD.replace("  entry_point: rewardgym.envs.countdown:CountdownEnv\n", "")))
    with pytest.raises(RegistryError, match=r"field 'id': must look like"):
        load_registry(_registry(tmp_path, GOOD.replace("Foo-v0", "Foo-version1")))
    with pytest.raises(RegistryError, match=r"entry #1 .*field 'entry_point': must be 'package.module:Object'"):
        load_registry(_registry(tmp_path, GOOD + GOOD.replace("Foo", "Bar").replace(":CountdownEnv", "")))


def test_shipped_registry_is_valid_and_registered() -> None:
    ids = [e.id for e in rewardgym.list_envs()]
    assert "rewardgym/Countdown-v0" in ids and ids == sorted(ids)
    assert all(i in gym.registry for i in ids)


def test_make_and_gym_make_are_the_same_env() -> None:
    a, b = rewardgym.make("Countdown-v0"), gym.make("rewardgym/Countdown-v0")
    assert type(a.unwrapped) is type(b.unwrapped) and a.spec == b.spec
    assert a.reset(seed=11)[0] == b.reset(seed=11)[0]


def test_reset_step_cycle_and_options() -> None:
    env = rewardgym.make("Countdown-v0")
    with pytest.raises(gym.error.ResetNeeded):
        env.step("x")
    prompt, info = env.reset(seed=5)
    task = info["task"]
    assert isinstance(task, Task) and prompt == task.prompt
    obs, reward, terminated, truncated, info = env.step("<answer>1</answer>")
    assert (obs, reward, terminated, truncated) == ("", 0.0, True, False)
    assert info["verdict"].reason == "wrong_numbers" and info["reward_components"] == {"correctness": 0.0}
    _, info = env.reset(options={"task": task.to_dict()})
    assert info["task"] == task
    with pytest.raises(TypeError, match="procedural"):
        env.reset(options={"index": 0})


def test_chat_form_gives_messages_in_info() -> None:
    env = rewardgym.make("Countdown-v0", chat=True, template="plain")
    prompt, info = env.reset(seed=1)
    assert info["messages"][0]["role"] == "system" and "user: Using the numbers" in prompt


def test_render_ansi() -> None:
    env = rewardgym.make("Countdown-v0", render_mode="ansi")
    env.reset(seed=2)
    env.step("<answer>x</answer>")
    assert env.render().endswith("<answer>x</answer>")
