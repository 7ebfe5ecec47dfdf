"""Data-parallel GRPO: sharding helpers, world-size-independent sampling, the 2-rank update equal to the
single-process one (gloo on loopback), and torchrun runs that resume across world sizes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from rewardgym.service import VerifierService  # noqa: E402
from rewardgym.trainers import grpo  # noqa: E402
from rewardgym.trainers.cli import train_main  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.distributed import (  # noqa: E402
    SINGLE, DataParallel, check_world, choose_backend, group_generators, group_seed, shard)
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, load_pretrained  # noqa: E402
from rewardgym.trainers.rollout import Rollout, sample  # noqa: E402
from rewardgym.trainers.sft import reference_pairs  # noqa: E402
from rewardgym.trainers.train import grpo_update  # noqa: E402

pytestmark = pytest.mark.torch
ENV = "rewardgym/Countdown-Easy-v0"
G = 4
REWARDS = [1.0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1]  # three groups; the middle one has zero variance
CASES = [  # each exercises another normaliser; minibatches of 3 or 5 rows straddle the ranks' shards
    dict(aggregation="token_mean", mu=2, minibatch_size=3, grad_clip=0.05, beta=0.1),
    dict(aggregation="seq_mean", ratio_level="sequence", grad_clip=1e9),
    dict(aggregation="seq_sum_norm", mu=2, minibatch_size=5, filter_zero_variance=False, scale_std=False,
         grad_clip=0.5),
]


def test_shard_gives_contiguous_blocks_in_rank_order():
    assert [shard(10, r, 3) for r in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
    assert [shard(2, r, 3) for r in range(3)] == [range(0, 1), range(1, 2), range(2, 2)]
    assert shard(5, 0, 1) == range(5)
    with pytest.raises(ValueError, match="rank 3 outside a world of 3"):
        shard(4, 3, 3)


def test_backend_follows_the_gpus_per_node():
    assert choose_backend(cuda_devices=0, local_world_size=2) == "gloo"
    assert choose_backend(cuda_devices=1, local_world_size=2) == "gloo"  # NCCL needs a GPU per rank
    assert choose_backend(cuda_devices=8, local_world_size=8) == "nccl"


def test_world_checks_name_the_setting():
    check_world(tasks_per_step=2, curriculum=False, world_size=2)
    with pytest.raises(ValueError, match=r"tasks_per_step \(1\) must be at least the number of ranks \(2\)"):
        check_world(tasks_per_step=1, curriculum=False, world_size=2)
    with pytest.raises(ValueError, match="curriculum=true is single-process only"):
        check_world(tasks_per_step=4, curriculum=True, world_size=2)


def test_group_seeds_are_distinct_and_reproducible():
    seeds = {group_seed(s, step, g) for s in (0, 1) for step in (0, 1) for g in (0, 1)}
    assert len(seeds) == 8 and group_seed(0, 1, 1) == group_seed(0, 1, 1)
    assert group_seed(-1, 0, 0) != group_seed(1, 0, 0)
    a, b = group_generators(3, 5, [1]), group_generators(3, 5, [0, 1])
    assert torch.equal(torch.rand(4, generator=a[0]), torch.rand(4, generator=b[1]))


def test_single_process_collectives_are_identities():
    values = torch.tensor([1.5, 2.0])
    assert torch.equal(SINGLE.sum(values), values) and torch.equal(SINGLE.max(values), values)
    assert SINGLE.concat({"r": [1.0, 2.0]})["r"].tolist() == [1.0, 2.0]
    assert SINGLE.broadcast({"x": 1}) == {"x": 1} and SINGLE.shard(3) == range(3) and SINGLE.main


@pytest.fixture(scope="module")
def tiny():
    pairs = reference_pairs(ENV, range(16))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    policy = DecoderLM(config)
    torch.manual_seed(1)
    reference = DecoderLM(config)
    return policy, reference, tok, [p for p, _ in pairs]


def test_a_groups_samples_do_not_depend_on_the_other_groups_in_the_batch(tiny):
    policy, _, tok, prompts = tiny
    both = sample(policy, tok, [prompts[0]] * G + [prompts[5]] * G, max_new_tokens=12,
                  generator=group_generators(0, 3, [0, 1]))
    alone = sample(policy, tok, [prompts[5]] * G, max_new_tokens=12, generator=group_generators(0, 3, [1]))
    assert both.texts[G:] == alone.texts and len(set(both.texts)) > 1
    with pytest.raises(ValueError, match="5 prompts do not split into 2 generator blocks"):
        sample(policy, tok, prompts[:5], max_new_tokens=2, generator=group_generators(0, 0, [0, 1]))


def _update(payload: dict, case: dict, dp: DataParallel) -> tuple[dict, dict]:
    """One grpo_update of ``case`` on this rank's share of the payload's global batch (SGD, so the
    parameters move by exactly the clipped gradient times the learning rate)."""
    cfg = TrainConfig(**case)
    policy = DecoderLM(payload["config"])
    policy.load_state_dict(payload["policy"])
    reference = None
    if cfg.beta > 0:
        reference = DecoderLM(payload["config"]).requires_grad_(False)
        reference.load_state_dict(payload["reference"])
    rewards = torch.tensor(REWARDS)
    advantages = grpo.group_advantages(rewards, G, scale_std=cfg.scale_std)
    keep = grpo.informative_groups(rewards, G) if cfg.filter_zero_variance else torch.ones(len(rewards), dtype=bool)
    groups = dp.shard(len(REWARDS) // G)
    owned = range(groups.start * G, groups.stop * G)
    rows = torch.arange(owned.start, owned.stop)
    full: Rollout = payload["rollout"]
    mine = Rollout(full.batch.select(rows), full.logprobs[rows], [full.texts[i] for i in rows],
                   [full.lengths[i] for i in rows], [full.truncated[i] for i in rows])
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    stats = grpo_update(cfg, policy, reference, optimizer, mine, advantages, keep, torch.Generator().manual_seed(7),
                        owned=owned, dp=dp)
    return policy.state_dict(), stats


def _rank_main(rank: int, world: int, store: str, payload: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dp = DataParallel(rank=rank, world_size=world)
        torch.save([_update(payload, case, dp) for case in CASES], f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_rank_update_equals_the_single_process_update(tiny, tmp_path):
    policy, reference, tok, prompts = tiny
    rollout = sample(policy, tok, [p for p in prompts[:3] for _ in range(G)], max_new_tokens=16,
                     generator=torch.Generator().manual_seed(0))
    payload = {"config": policy.config, "policy": policy.state_dict(), "reference": reference.state_dict(),
               "rollout": rollout}
    torch.multiprocessing.spawn(_rank_main, args=(2, str(tmp_path / "store"), payload, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for case, single, first, second in zip(CASES, [_update(payload, c, SINGLE) for c in CASES], *ranks):
        weights, stats = single
        assert all(torch.equal(first[0][k], second[0][k]) for k in weights), case  # the ranks stay in step
        moved = max((weights[k] - payload["policy"][k]).abs().max().item() for k in weights)
        assert moved > 1e-3, case  # the update did something worth comparing
        assert all(torch.allclose(first[0][k], weights[k], rtol=0, atol=1e-6) for k in weights), case
        assert first[1] == pytest.approx(stats, rel=1e-5, abs=1e-7), case
        assert second[1] == first[1], case


# -- torchrun end to end ---------------------------------------------------------------------------

TINY = ["vocab_size=300", "hidden_size=32", "intermediate_size=64", "num_layers=1", "num_heads=2", "num_kv_heads=1",
        "sft_examples=32", "sft_steps=30", "sft_batch_size=8", "sft_lr=0.01", "tasks_per_step=3", "group_size=4",
        "max_new_tokens=40", "eval_tasks=5", "checkpoint_every=2", "plot=false", "lr=0.001", "temperature=1.5",
        "overlong_buffer=30", "beta=0.05", "mu=2", "minibatch_size=5", "progress=false"]
SAMPLED = ("reward_mean", "reward_std", "accuracy", "response_length", "completion_tokens", "truncated_fraction",
           "groups_kept", "optimizer_steps")  # fixed by the sampled batch alone


def _torchrun(run_dir, steps: int, *extra: str) -> None:
    """``torchrun --standalone --nproc_per_node 2 -m rewardgym train`` (a free loopback port); the whole
    process group is killed if it outlives the timeout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "rewardgym", "train", f"run_dir={run_dir}", f"steps={steps}", *TINY, *extra]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-3000:]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(run_dir):
    return load_pretrained(run_dir / "checkpoints" / "step-000004", with_tokenizer=False)[0].state_dict()


@pytest.fixture
def service_url():
    httpd = VerifierService().make_server("127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow
def test_torchrun_checkpoints_resume_on_another_world_size(tmp_path, service_url):
    full, two_then_one, one_then_two = tmp_path / "full", tmp_path / "b", tmp_path / "c"
    assert train_main([f"run_dir={full}", "steps=4", *TINY]) == 0
    two_then_one.mkdir()
    shutil.copytree(full / "start", two_then_one / "start")  # the same SFT cold start
    _torchrun(two_then_one, steps=2)
    assert sorted(p.name for p in (two_then_one / "checkpoints").iterdir()) == ["latest", "step-000002"]
    assert train_main([f"run_dir={two_then_one}", "steps=4", *TINY]) == 0
    shutil.copytree(full, one_then_two)
    shutil.rmtree(one_then_two / "checkpoints" / "step-000004")
    (one_then_two / "checkpoints" / "latest").write_text("step-000002\n")
    _torchrun(one_then_two, 4, f"remote={service_url}")  # both ranks verify on the service

    reference = _weights(full)
    for run in (two_then_one, one_then_two):
        weights = _weights(run)
        # equal up to float32 reduction order: each rank sums its own rows before the all-reduce
        assert all(torch.allclose(weights[k], reference[k], rtol=0, atol=1e-4) for k in reference), run.name
        for mine, theirs in zip(_metrics(run), _metrics(full), strict=True):
            assert {k: mine[k] for k in SAMPLED} == {k: theirs[k] for k in SAMPLED}  # the same global batch
            for key in ("loss", "kl", "clip_fraction", "entropy", "grad_norm"):
                assert mine[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-6), (run.name, key)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 4 and "accuracy_end" in summary
    assert not list(two_then_one.glob("**/*.partial")) and (two_then_one / "config.json").is_file()
