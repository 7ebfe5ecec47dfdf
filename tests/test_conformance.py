"""The conformance suite over every registered id: a new env is tested by being registered."""

from __future__ import annotations

import pytest

import rewardgym
from rewardgym import conformance
from rewardgym.core import Task, Verdict

from .conftest import dataset_kwargs

IDS = [e.id for e in rewardgym.list_envs() if "reasoning-gym" not in e.tags]
BRIDGED = [e.id for e in rewardgym.list_envs(tag="reasoning-gym") if "known-broken" not in e.tags]
KWARGS = dataset_kwargs()


@pytest.mark.parametrize("env_id", IDS)
def test_conformance(env_id: str) -> None:
    results = conformance.check_one(env_id, KWARGS.get(env_id))
    failures = [f"{r.check}: {r.message}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    assert {r.check for r in results} >= {"registry", "examples", "make"}


@pytest.mark.slow
def test_determinism_across_hash_seeds() -> None:
    ids = [i for i in IDS if i in KWARGS or not rewardgym.spec(i).data]
    results = conformance.determinism_results(ids, KWARGS)
    assert [r.env_id for r in results if not r.ok] == []


@pytest.mark.slow
@pytest.mark.parametrize("env_id", BRIDGED)
def test_reasoning_gym_bridge_conformance(env_id: str) -> None:
    pytest.importorskip("reasoning_gym")
    results = conformance.check_one(env_id, tasks=2)
    failures = [f"{r.check}: {r.message}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_reasoning_gym_bridge_determinism_matches_the_registry_tags() -> None:
    pytest.importorskip("reasoning_gym")
    results = conformance.determinism_results([e.id for e in rewardgym.list_envs(tag="reasoning-gym")], tasks=2)
    differ = {r.env_id for r in results if not r.ok}
    assert differ == {e.id for e in rewardgym.list_envs(tag="hash-seed-dependent")}


def test_missing_examples_say_what_to_add(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(conformance, "EXAMPLES_DIR", tmp_path)
    (result,) = [r for r in conformance.check_one("rewardgym/Countdown-v0") if r.check == "examples"]
    assert not result.ok
    assert "countdown.yaml" in result.message and "CONTRIBUTING.md" in result.message


def test_wrong_example_is_reported(tmp_path, monkeypatch) -> None:
    (tmp_path / "countdown.yaml").write_text(
        "- task: {id: t, prompt: p, answer: 3, meta: {numbers: [1, 2], target: 3}}\n"
        "  completion: '<answer>1+2</answer>'\n  reward: 1.0\n"
        "- task: {id: t, prompt: p, answer: 3, meta: {numbers: [1, 2], target: 3}}\n"
        "  completion: '<answer>1*2</answer>'\n  reward: 1.0\n"
        "- task: {id: t, prompt: p, answer: 3, meta: {numbers: [1, 2], target: 3}}\n"
        "  completion: '<answer>3</answer>'\n  reward: 0.0\n")
    monkeypatch.setattr(conformance, "EXAMPLES_DIR", tmp_path)
    (result,) = [r for r in conformance.check_one("rewardgym/Countdown-v0") if r.check == "examples"]
    assert not result.ok and "#1" in result.message and "wrong_answer" in result.message


def test_slow_verifier_fails_the_time_check() -> None:
    import time

    env = rewardgym.make("Countdown-v0").unwrapped

    class Sleepy(type(env.verifier)):
        time_limit = 0.01

        def verify(self, completion: str, task: Task) -> Verdict:
            time.sleep(0.001 if len(completion) < 100 else conformance.TIME_SLACK + 0.05)
            return super().verify(completion, task)

    env.verifier = Sleepy()
    with pytest.raises(AssertionError, match="took"):
        conformance.check_adversarial(env)
