"""Vector envs: groups, mixtures, seeding, ordering, parallel offloaded checks, and score()."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import rewardgym
from rewardgym.core import Task, Verdict, Verifier
from rewardgym.verifiers.countdown import CountdownVerifier


def test_gym_make_vec_and_rewardgym_make_vec_agree() -> None:
    a = gym.make_vec("rewardgym/Countdown-v0", 4, group_size=2)
    b = rewardgym.make_vec("Countdown-v0", 4, group_size=2)
    assert a.reset(seed=9)[0] == b.reset(seed=9)[0]
    assert a.metadata["autoreset_mode"] == gym.vector.AutoresetMode.DISABLED


def test_groups_repeat_one_task_and_seeds_follow_gymnasium() -> None:
    env = rewardgym.make_vec("Countdown-v0", 6, group_size=3)
    obs, info = env.reset(seed=10)
    tasks = list(info["task"])
    assert tasks[0] == tasks[1] == tasks[2] != tasks[3] == tasks[4] == tasks[5]
    single = rewardgym.make("Countdown-v0").unwrapped
    assert tasks[0] == single.generate(10) and tasks[3] == single.generate(11)
    assert list(info["group"]) == [0, 0, 0, 1, 1, 1] and obs[0] == obs[2]


def test_step_keeps_order_and_reports_verdicts() -> None:
    env = rewardgym.make_vec("Countdown-v0", 4)
    _, info = env.reset(seed=0)
    single = rewardgym.make("Countdown-v0").unwrapped
    completions = [single.reference(t) if i % 2 == 0 else "<answer>1</answer>" for i, t in enumerate(info["task"])]
    obs, rewards, term, trunc, info = env.step(completions)
    assert list(rewards) == [1.0, 0.0, 1.0, 0.0] and term.all() and not trunc.any()
    assert [v.reason for v in info["verdict"]] == ["ok", "wrong_numbers", "ok", "wrong_numbers"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(completions)


def test_seed_lists_per_group_or_per_slot() -> None:
    env = rewardgym.make_vec("Countdown-v0", 4, group_size=2)
    by_group = list(env.reset(seed=[7, 3])[1]["task"])
    by_slot = list(env.reset(seed=[7, 7, 3, 3])[1]["task"])
    single = rewardgym.make("Countdown-v0").unwrapped
    assert by_group == by_slot == [single.generate(7)] * 2 + [single.generate(3)] * 2
    with pytest.raises(ValueError, match="equal within each group"):
        env.reset(seed=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="one per group"):
        env.reset(seed=[1, 2, 3])
    _, rewards, _, _, info = env.step(["x"] * 4)
    assert list(info["reward_components"]["correctness"]) == list(rewards)


def test_bad_shapes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="multiple of group_size"):
        rewardgym.make_vec("Countdown-v0", 5, group_size=2)
    env = rewardgym.make_vec("Countdown-v0", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="needs 2 completions"):
        env.step(["a"])
    with pytest.raises(ValueError, match="one per group"):
        env.reset(options={"tasks": [Task(id="a", prompt="p")] * 3})


def test_mixture_draws_env_per_group_by_weight() -> None:
    env = rewardgym.make_vec({"Countdown-v0": 3, "Format-R1Template-v0": 1}, 400, group_size=2)
    _, info = env.reset(seed=1)
    ids = list(info["env_id"])
    share = ids.count("rewardgym/Countdown-v0") / len(ids)
    assert 0.65 < share < 0.85 and ids[0::2] == ids[1::2]
    _, rewards, _, _, info = env.step(["<think>a</think><answer>b</answer>"] * 400)
    fmt = np.array([i == "rewardgym/Format-R1Template-v0" for i in ids])
    assert rewards[fmt].min() == 1.0 and rewards[~fmt].max() == 0.0


def test_explicit_tasks_per_group() -> None:
    env = rewardgym.make_vec("Countdown-v0", 4, group_size=2)
    t = Task(id="mine", prompt="p", answer=3, meta={"numbers": [1, 2], "target": 3})
    obs, info = env.reset(options={"tasks": [t, t.to_dict()]})
    assert obs == ("p",) * 4
    assert list(env.step(["<answer>1+2</answer>"] * 4)[1]) == [1.0] * 4


class _Slow(Verifier):
    """Offloaded-style verifier: sleeps (releasing the GIL) as a sandbox or pool call would."""

    offloaded = True
    time_limit = 1.0

    def verify(self, completion: str, task: Task) -> Verdict:
        time.sleep(float(completion))
        return Verdict.right(threading.get_ident())


def test_offloaded_verifiers_run_concurrently_so_one_slow_item_does_not_stall_the_batch() -> None:
    start = time.perf_counter()
    verdicts = _Slow().verify_batch(["0.5"] + ["0.01"] * 15, [Task(id="t", prompt="")] * 16, threads=16)
    elapsed = time.perf_counter() - start
    assert len({v.parsed for v in verdicts}) > 1 and elapsed < 0.5 + 0.4  # not 0.5 + 15 * 0.01 serially


def test_score_fast_path_matches_env() -> None:
    single = rewardgym.make("Countdown-v0").unwrapped
    tasks = [single.generate(s) for s in range(20)]
    completions = [single.reference(t) for t in tasks]
    assert [v.reward for v in rewardgym.score("Countdown-v0", completions, tasks)] == [1.0] * 20
    assert rewardgym.score("Countdown-v0", ["<answer>x</answer>"] * 2, tasks[0].to_dict())[0].reason == "format_error"
    assert isinstance(rewardgym.verifier("rewardgym/Countdown-v0"), CountdownVerifier)
