"""Code environments and the sandboxed code verifier: extraction, scoring, datasets, hostile code."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import pytest
import yaml

import rewardgym
from rewardgym.core import DataRequired, Task
from rewardgym.envs.code import FAMILIES, CodeBasicsEnv, CodeEnv
from rewardgym.sandbox import Limits, SandboxUnavailable, shared_backend
from rewardgym.verifiers.code import CodeVerifier, extract_code

from .sandbox_backends import open_backend

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HUMANEVAL = SHARED_DATA / "HumanEval.jsonl.gz"
MBPP = SHARED_DATA / "mbpp_test_deepseek.jsonl"
EXAMPLES = Path(rewardgym.__file__).with_name("examples") / "code.yaml"


#: For the dataset references: generous, so a loaded machine cannot turn a slow pass into a timeout.
GENEROUS = Limits(wall_time=30, cpu_time=30, memory_mb=1024, processes=16)


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    """The code verifier on the default ('auto') sandbox backend."""
    try:
        shared_backend("auto")
    except SandboxUnavailable as exc:
        pytest.skip(f"no isolating sandbox backend here: {exc}")
    return CodeVerifier(backend="auto")


@pytest.fixture(scope="module")
def generous(verifier) -> CodeVerifier:
    return CodeVerifier(backend=verifier.backend, limits=GENEROUS)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared dataset {path.name} not found at {path.parent}")
    return path


def verify_all(verifier: CodeVerifier, pairs: list[tuple[str, Task]]):
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda p: verifier.verify(*p), pairs))


# -- extraction (no sandbox) ---------------------------------------------------------------
@pytest.mark.parametrize("text, code, reason", [
    ("<answer>\n```python\nx = 1\n```\n</answer>", "x = 1", "ok"),
    ("<answer>x = 2</answer>", "x = 2", "ok"),
    ("```python\na\n```\ntext\n```py\nb\n```", "b", "ok"),
    ("```\nbare\n```", "bare", "ok"),
    ("```python\noutside\n```<answer>\n```python\ninside\n```\n</answer>", "inside", "ok"),
    ("<answer>\n```python\none\n```\n```python\ntwo\n```\n</answer>", "two", "ok"),
    ("<answer>a</answer><answer>b</answer>", None, "ambiguous"),
    ("no code here", None, "no_answer"),
    ("<answer>unclosed", None, "no_answer"),
])
def test_extract_code(text, code, reason):
    assert extract_code(text) == (code, reason)


def test_code_that_does_not_compile_never_reaches_the_sandbox():
    v = CodeVerifier(backend="no-such-backend")  # would raise if it were used
    task = Task("t", "p", {"kind": "stdio", "tests": [{"input": "", "output": ""}]})
    assert v.verify("<answer>def f(:</answer>", task).reason == "format_error"
    assert v.verify("<answer>" + "9" * 10000 + "</answer>", task).reason == "format_error"
    assert v.verify("nothing", task).reason == "no_answer"


def test_time_limit_covers_the_sandbox_wall_clock():
    v = CodeVerifier()
    assert v.time_limit > v.limits.wall_time


# -- the examples file, known-good and known-bad (sandbox) -----------------------------------
def test_examples(verifier):
    examples = yaml.safe_load(EXAMPLES.read_text())
    pairs = [(ex["completion"], Task.from_dict(ex["task"])) for ex in examples]
    got = [(v.reward, v.reason) for v in verify_all(verifier, pairs)]
    want = [(pytest.approx(float(ex["reward"])), ex["reason"]) for ex in examples]
    assert got == want


def test_verdict_reports_each_test_and_the_first_failure(verifier):
    task = Task("sq", "p", {"kind": "function", "tests": ["assert f(1) == 1", "assert f(2) == 4, 'two'",
                                                          "assert f(3) == 9"]})
    v = verifier.verify("<answer>\n```python\ndef f(x):\n    return x if x < 2 else 0\n```\n</answer>", task)
    assert v.reward == pytest.approx(1 / 3) and not v.correct
    assert v.details == {"passed": 1, "total": 3, "tests": [True, False, False], "first_failure": "AssertionError: two"}
    json.dumps(v.to_dict())


def test_all_or_nothing(verifier):
    task = Task("io", "p", {"kind": "stdio", "tests": [{"input": "1\n", "output": "1\n"}, {"input": "2\n", "output": "2\n"}]})
    strict = CodeVerifier(backend=verifier.backend, all_or_nothing=True)
    half = "<answer>\n```python\nprint(1)\n```\n</answer>"
    assert verifier.verify(half, task).reward == 0.5 and strict.verify(half, task).reward == 0.0


def test_completion_never_runs_in_the_calling_process(verifier, tmp_path):
    planted = Path(f"/tmp/rg-code-{uuid.uuid4().hex}")
    task = Task("io", "p", {"kind": "stdio", "tests": [{"input": "", "output": "x\n"}]})
    code = f"open({str(planted)!r}, 'w').write('pwned')\nopen({str(tmp_path / 'x')!r}, 'w').write('p')\nprint('x')"
    verdict = verifier.verify(f"<answer>\n```python\n{code}\n```\n</answer>", task)
    assert verdict.reward == 0.0 and not planted.exists() and not (tmp_path / "x").exists()


# -- datasets ----------------------------------------------------------------------------
def test_dataset_envs_need_data():
    for env_id in ("rewardgym/HumanEval-v0", "rewardgym/MBPP-v0"):
        with pytest.raises(DataRequired, match="needs data="):
            rewardgym.make(env_id)


def test_stdio_dataset_and_bad_records(tmp_path):
    path = tmp_path / "io.jsonl"
    path.write_text(json.dumps({"task_id": "a", "question": "Echo.", "inputs": ["x\n"], "outputs": ["x\n"],
                                "solution": "print(input())"}) + "\n" + json.dumps({"task_id": "b", "question": "?"}) + "\n")
    env = CodeEnv(data=path)
    assert env.format == "stdio" and env.num_tasks == 2
    task = env.task_at(0)
    assert task.answer == {"kind": "stdio", "tests": [{"input": "x\n", "output": "x\n"}]}
    with pytest.raises(ValueError, match=r"io.jsonl: record #1 is not a valid stdio record"):
        env.task_at(1)
    with pytest.raises(ValueError, match="format must be one of"):
        CodeEnv(data=path, format="csv")


def test_humaneval_tasks():
    env = rewardgym.make("HumanEval-v0", data=str(need(HUMANEVAL))).unwrapped
    task = env.task_at(0)
    assert env.num_tasks == 164 and task.id == "HumanEval/0"
    assert "def has_close_elements" in task.prompt and "check(has_close_elements)" in task.answer["tests"][0]
    assert task.answer["preamble"] == "from typing import List"


def test_humaneval_canonical_solutions_pass_and_empty_bodies_fail(generous):
    verifier = generous
    env = CodeEnv(data=need(HUMANEVAL), verifier=verifier)
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    good = verify_all(verifier, [(env.reference(t), t) for t in tasks])
    assert [t.id for t, v in zip(tasks, good) if not v.correct] == []
    hollow = verify_all(verifier, [(f"<answer>\n```python\n{t.meta['prompt_code']}    return None\n```\n</answer>", t)
                                   for t in tasks])
    assert [t.id for t, v in zip(tasks, hollow) if v.reward > 0] == []


@pytest.mark.docker
def test_humaneval_canonical_solutions_pass_under_docker():
    backend = open_backend("docker", pool_size=2)
    try:
        docker_verifier = CodeVerifier(backend=backend, limits=GENEROUS)
        env = CodeEnv(data=need(HUMANEVAL), verifier=docker_verifier)
        tasks = [env.task_at(i) for i in range(env.num_tasks)]
        verdicts = verify_all(docker_verifier, [(env.reference(t), t) for t in tasks])
    finally:
        backend.close()
    assert [t.id for t, v in zip(tasks, verdicts) if not v.correct] == []


def test_mbpp_reference_code_passes(generous):
    """All 500 records. Task 367 cannot pass in this copy: its tests use trees built by MBPP's
    test_setup_code, which the DeepSeek copy dropped."""
    env = CodeEnv(data=need(MBPP), verifier=generous)
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    verdicts = verify_all(generous, [(env.reference(t), t) for t in tasks])
    assert [t.id for t, v in zip(tasks, verdicts) if not v.correct] == ["mbpp-367"]


# -- the procedural env -------------------------------------------------------------------
def test_code_basics_is_deterministic_and_covers_every_family():
    env = CodeBasicsEnv()
    assert env.generate(3) == CodeBasicsEnv().generate(3)
    assert {env.generate(s).meta["family"] for s in range(60)} == set(FAMILIES)
    with pytest.raises(ValueError, match="unknown families"):
        CodeBasicsEnv(families=["nope"])


def test_code_basics_references_pass_and_a_wrong_program_does_not(verifier):
    env = CodeBasicsEnv(verifier=verifier)
    tasks = [env.generate(s) for s in range(40)]
    by_family = {t.meta["family"]: t for t in tasks}
    assert set(by_family) == set(FAMILIES)
    verdicts = verify_all(verifier, [(env.reference(t), t) for t in by_family.values()])
    assert all(v.correct for v in verdicts)
    wrong = verifier.verify("<answer>\n```python\nprint(input())\n```\n</answer>", by_family["sum"])
    assert wrong.reward < 1.0


def test_code_basics_through_gymnasium(verifier):
    env = gym.make("rewardgym/CodeBasics-v0", verifier=verifier)
    prompt, info = env.reset(seed=5)
    assert "<answer>" in prompt and info["task"].id == "code-basics-5"
    _, reward, terminated, _, info = env.step(env.unwrapped.reference(info["task"]))
    assert reward == 1.0 and terminated and info["verdict"].correct
    check_env(env.unwrapped, skip_render_check=True)


def test_multi_turn_feedback_until_solved(verifier):
    env = CodeBasicsEnv(verifier=verifier, max_turns=3, families=["sum"])
    _, info = env.reset(seed=1)
    wrong = "<answer>\n```python\nprint(0)\n```\n</answer>"
    obs, reward, terminated, truncated, step_info = env.step(wrong)
    assert not terminated and not truncated and step_info["turn"] == 1 and reward < 1.0
    assert obs.startswith("Your solution passed") and "First failure: wrong output" in obs
    obs, reward, terminated, _, step_info = env.step(env.reference(info["task"]))
    assert terminated and reward == 1.0 and step_info["turn"] == 2
    env.reset(seed=1)
    for _ in range(3):
        _, _, terminated, _, _ = env.step(wrong)
    assert terminated
    with pytest.raises(gym.error.ResetNeeded):
        env.step(wrong)
    with pytest.raises(ValueError, match="max_turns"):
        CodeBasicsEnv(max_turns=0)
    check_env(CodeBasicsEnv(verifier=verifier, max_turns=2), skip_render_check=True)
