"""Expert-parallel GRPO over two gloo processes: sampling in lockstep, the update (and the
checkpoint gathered from the experts' owners) equal to one process's, and a torchrun run with
``expert_parallel=true`` that resumes in one process."""

import copy
import json
import shutil

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from rewardgym.trainers import grpo  # noqa: E402
from rewardgym.trainers.cli import train_main  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.distributed import SINGLE, DataParallel, group_generators  # noqa: E402
from rewardgym.trainers.expert_sharding import gather_full, shard_policy, state_by_name, state_for  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, load_pretrained  # noqa: E402
from rewardgym.trainers.models.expert_parallel import lockstep, sit_out  # noqa: E402
from rewardgym.trainers.models.moe import moe_layers, split_parameters  # noqa: E402
from rewardgym.trainers.rollout import Rollout, sample  # noqa: E402
from rewardgym.trainers.sft import reference_pairs  # noqa: E402
from rewardgym.trainers.train import grpo_update  # noqa: E402
from tests.test_distributed import TINY, _torchrun  # noqa: E402

pytestmark = pytest.mark.torch
ENV = "rewardgym/Countdown-Easy-v0"
G = 4
REWARDS = [1.0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1]  # rank 0 owns groups 0-1 (the second is dropped), rank 1 group 2
CASE = dict(mu=2, minibatch_size=2, grad_clip=0.05, beta=0.05)  # minibatches of 2 often fall on one rank alone
MOE = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
           num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, n_shared_experts=1, n_group=2, topk_group=1,
           scoring_func="sigmoid", aux_loss_alpha=0.5, bias_update_speed=0.01)


def test_optimizer_state_moves_between_parameter_lists_by_name():
    state = {"state": {0: {"m": 1}, 2: {"m": 3}}, "param_groups": [{"lr": 0.1, "params": [0, 1, 2]}]}
    by_name, settings = state_by_name(state, ["a", "b", "c"])
    assert by_name == {"a": {"m": 1}, "c": {"m": 3}} and settings == {"lr": 0.1}
    assert state_for(by_name, settings, ["c", "x"]) == {"state": {0: {"m": 3}}, "param_groups": [{"lr": 0.1,
                                                                                                   "params": [0, 1]}]}
    with pytest.raises(ValueError, match="one parameter group of 2 parameters"):
        state_by_name(state, ["a", "b"])


def test_dense_policy_is_refused():
    with pytest.raises(ValueError, match="expert_parallel=true needs a Mixture-of-Experts policy: set num_experts"):
        TrainConfig(expert_parallel=True)
    assert TrainConfig(expert_parallel=True, num_experts=4).expert_parallel
    dense = DecoderLM(ModelConfig(vocab_size=16, hidden_size=8, num_attention_heads=1, num_key_value_heads=1))
    with pytest.raises(ValueError, match="expert_parallel=true needs a Mixture-of-Experts policy"):
        shard_policy(dense, None, SINGLE)


def _policy(payload):
    policy = DecoderLM(payload["config"])
    policy.load_state_dict(payload["policy"])
    return policy


def _update(payload, dp):
    """One GRPO update of this rank's rows, from the payload's optimizer state (SGD with momentum)
    cut to this rank's share; returns the full weights and optimizer state (rank 0) and the stats."""
    cfg = TrainConfig(**CASE)
    policy = _policy(payload)
    reference = _policy(payload).requires_grad_(False)
    # a copy: spawn shares the payload's tensors with the parent, and SGD updates loaded buffers in place
    optimizer_state = shard_policy(policy, copy.deepcopy(payload["optimizer"]), dp)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1, momentum=0.9)
    optimizer.load_state_dict(optimizer_state)
    rewards = torch.tensor(REWARDS)
    owned = range(0, 8) if dp.rank == 0 and dp.world_size > 1 else range(8, 12) if dp.world_size > 1 else range(12)
    rows = torch.arange(owned.start, owned.stop)
    full: Rollout = payload["rollout"]
    mine = Rollout(full.batch.select(rows), full.logprobs[rows], [full.texts[i] for i in rows],
                   [full.lengths[i] for i in rows], [full.truncated[i] for i in rows], full.routing[rows])
    stats = grpo_update(cfg, policy, reference, optimizer, mine, grpo.group_advantages(rewards, G),
                        grpo.informative_groups(rewards, G), torch.Generator().manual_seed(7), owned=owned, dp=dp)
    whole, whole_optimizer = gather_full(policy, optimizer, dp)
    if whole is None:
        return None, None, stats
    return whole.state_dict(), whole_optimizer.state_dict(), stats


def _sample(policy, payload, rank, steps):
    prompts = payload["prompts"][4 * rank:4 * rank + 4]
    return sample(policy, payload["tok"], prompts, max_new_tokens=steps, generator=group_generators(0, 0, [rank]))


def _rank_main(rank, store, payload, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        dp = DataParallel(rank=rank, world_size=2)
        policy = _policy(payload)
        shard_policy(policy, None, dp)
        with lockstep(policy):  # the ranks decode for different numbers of steps
            rollout = _sample(policy, payload, rank, 6 + 6 * rank)
        if rank == 0:  # rank 1 has nothing to sample and serves its experts
            with lockstep(policy):
                again = _sample(policy, payload, 1, 12)
        else:
            sit_out(policy)
            again = None
        torch.save({"sampled": (rollout, again), "update": _update(payload, dp),
                    "experts": [len([e for e in layer.experts if e is not None]) for layer in moe_layers(policy)],
                    "sharded": len(split_parameters(policy)[1])}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    pairs = reference_pairs(ENV, range(8))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    policy = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, **MOE))
    prompts = [p for p, _ in pairs]
    rollout = sample(policy, tok, [p for p in prompts[:3] for _ in range(G)], max_new_tokens=12,
                     generator=torch.Generator().manual_seed(0))
    warm = torch.optim.SGD(policy.parameters(), lr=0.1, momentum=0.9)  # momentum buffers to shard and gather
    sum((p * torch.arange(p.numel()).view_as(p).sin()).sum() for p in policy.parameters()).backward()
    warm.step()
    payload = {"config": policy.config, "policy": policy.state_dict(), "optimizer": warm.state_dict(),
               "rollout": rollout, "tok": tok, "prompts": prompts}
    out = tmp_path_factory.mktemp("ep")
    torch.multiprocessing.spawn(_rank_main, args=(str(out / "store"), payload, str(out)), nprocs=2)
    return payload, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.slow
def test_each_rank_holds_half_the_experts_and_samples_as_one_process(two_ranks):
    payload, ranks = two_ranks
    policy = _policy(payload)
    assert [r["experts"] for r in ranks] == [[2, 2], [2, 2]] and ranks[0]["sharded"] == 2 * 2 * 3
    expected = [_sample(policy, payload, 0, 6), _sample(policy, payload, 1, 12)]
    got = [ranks[0]["sampled"][0], ranks[1]["sampled"][0]]
    assert ranks[0]["sampled"][1].texts == expected[1].texts  # sampled while rank 1 sat out
    for mine, theirs in zip(got + [ranks[0]["sampled"][1]], expected + [expected[1]]):
        assert mine.texts == theirs.texts and mine.lengths == theirs.lengths
        assert torch.allclose(mine.logprobs, theirs.logprobs, atol=1e-5)
        assert torch.equal(mine.routing, theirs.routing)  # what routing replay trains on


@pytest.mark.slow
def test_expert_parallel_update_equals_the_single_process_update(two_ranks):
    payload, ranks = two_ranks
    rows = [index.tolist() for index in grpo.minibatches(8, 2, 2, torch.Generator().manual_seed(7))]
    kept = [0, 1, 2, 3, 8, 9, 10, 11]
    alone = [{kept[i] // 8 for i in chosen} for chosen in rows]
    assert {0} in alone and {1} in alone  # each rank sat out some minibatch (token-free passes)
    weights, optimizer, stats = _update(payload, SINGLE)
    got_weights, got_optimizer, got_stats = ranks[0]["update"]
    assert ranks[1]["update"][0] is None  # rank 0 alone holds the gathered checkpoint
    moved = max((weights[k] - payload["policy"][k]).abs().max().item() for k in weights)
    assert moved > 1e-3
    assert stats["grad_norm"] > CASE["grad_clip"]  # clipping by the global norm was exercised
    for k in weights:
        assert torch.allclose(got_weights[k], weights[k], rtol=0, atol=1e-6), k
    assert optimizer["param_groups"] == got_optimizer["param_groups"]
    assert sorted(optimizer["state"]) == sorted(got_optimizer["state"])  # every expert's momentum came back
    for i, state in optimizer["state"].items():
        assert torch.allclose(got_optimizer["state"][i]["momentum_buffer"], state["momentum_buffer"], atol=1e-6), i
    loads = [torch.tensor(row.pop("moe_load")) for row in (stats, got_stats, ranks[1]["update"][2])]
    assert torch.allclose(loads[1], loads[0], atol=1e-12) and torch.equal(loads[1], loads[2])
    assert got_stats == pytest.approx(stats, rel=1e-5, abs=1e-7) and ranks[1]["update"][2] == got_stats


MOE_RUN = ["num_layers=2", "num_experts=4", "moe_intermediate_size=16", "aux_loss_alpha=0.01", "sft_steps=20",
           "max_new_tokens=24", "overlong_buffer=12", "eval_tasks=3"]  # on top of test_distributed's TINY


@pytest.mark.slow
def test_torchrun_expert_parallel_checkpoints_resume_across_world_sizes(tmp_path):
    full, split, joined = tmp_path / "full", tmp_path / "split", tmp_path / "joined"
    assert train_main([f"run_dir={full}", "steps=4", *TINY, *MOE_RUN]) == 0
    split.mkdir()
    shutil.copytree(full / "start", split / "start")  # the same SFT cold start
    _torchrun(split, 2, *MOE_RUN, "expert_parallel=true")
    state = torch.load(split / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=True)
    alone = torch.load(full / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=True)
    assert sorted(state["optimizer"]["state"]) == sorted(alone["optimizer"]["state"])  # the full layout
    for i, moments in alone["optimizer"]["state"].items():
        assert torch.allclose(state["optimizer"]["state"][i]["exp_avg"], moments["exp_avg"], rtol=0, atol=1e-6)
    assert train_main([f"run_dir={split}", "steps=4", *TINY, *MOE_RUN]) == 0  # one process, experts unsharded
    shutil.copytree(full, joined)
    shutil.rmtree(joined / "checkpoints" / "step-000004")
    (joined / "checkpoints" / "latest").write_text("step-000002\n")
    _torchrun(joined, 4, *MOE_RUN, "expert_parallel=true")  # each rank loads its share of the optimizer state

    reference = _load(full)
    for run in (split, joined):
        resumed = _load(run)
        assert all(torch.allclose(resumed[k], reference[k], rtol=0, atol=1e-4) for k in reference), run.name
        rows = [[json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (full, run)]
        for mine, theirs in zip(*rows, strict=True):
            for key in ("reward_mean", "accuracy", "response_length", "groups_kept", "optimizer_steps"):
                assert mine[key] == theirs[key], key  # the same global batch
            for key in ("loss", "kl", "grad_norm", "moe_imbalance"):
                assert mine[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-6), key


def _load(run):
    return load_pretrained(run / "checkpoints" / "step-000004", with_tokenizer=False)[0].state_dict()
