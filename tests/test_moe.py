"""Mixture-of-Experts: routing and balancing by hand, routing replay, Qwen3-MoE parity, GRPO steps."""

import json
import math

import pytest

torch = pytest.importorskip("torch")

import rewardgym  # noqa: E402
from rewardgym.trainers.cli import train_main  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, load_pretrained, save_pretrained  # noqa: E402
from rewardgym.trainers.models.moe import (MoE, Router, balance_experts, moe_layers,  # noqa: E402
                                           sequence_balance_loss)
from rewardgym.trainers.rollout import completion_logprobs, sample  # noqa: E402
from rewardgym.trainers.sft import reference_pairs  # noqa: E402
from rewardgym.trainers.train import grpo_step  # noqa: E402

pytestmark = pytest.mark.torch
ENV = "rewardgym/Countdown-Easy-v0"
DEEPSEEK = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, n_shared_experts=1,
                scoring_func="sigmoid", routed_scaling_factor=1.5, first_k_dense_replace=1)


def _router(logits, **options):
    """A router over len(logits) experts whose logits for the token x = [1, 0] are ``logits``."""
    config = ModelConfig(hidden_size=8, num_attention_heads=1, num_key_value_heads=1, num_experts=len(logits),
                         **options)
    router = Router(config)
    with torch.no_grad():
        router.weight.zero_()
        router.weight[:, 0] = torch.tensor(logits)
    return router, torch.eye(8)[:1]


def _by_expert(weights, chosen):
    return dict(zip(chosen[0].tolist(), weights[0].tolist()))


def test_sigmoid_routing_chooses_with_the_bias_but_weights_without_it():
    router, x = _router([0.0, 1.0, 2.0, -1.0], scoring_func="sigmoid", routed_scaling_factor=2.0)
    weights, chosen, _, _ = router(x)
    assert sorted(chosen[0].tolist()) == [1, 2]  # the two highest scores
    s1, s2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    assert _by_expert(weights, chosen) == pytest.approx({1: 2 * s1 / (s1 + s2), 2: 2 * s2 / (s1 + s2)})
    router.e_score_correction_bias.copy_(torch.tensor([0.0, 0.0, -1.0, 1.0]))  # biased: .5 .73 -.12 1.27
    weights, chosen, _, fresh = router(x)
    assert torch.equal(chosen, fresh) and sorted(chosen[0].tolist()) == [1, 3]
    # sigmoid(1) + sigmoid(-1) = 1, so the normalised gates are the raw scores (times the scaling factor)
    assert _by_expert(weights, chosen) == pytest.approx({1: 2 * s1, 3: 2 * (1 - s1)})


@pytest.mark.parametrize("norm,expected", [(False, {3: 0.4, 2: 0.3}), (True, {3: 4 / 7, 2: 3 / 7})])
def test_softmax_routing_and_top_k_normalisation(norm, expected):
    router, x = _router([math.log(v) for v in (1, 2, 3, 4)], norm_topk_prob=norm)  # probabilities .1 .2 .3 .4
    weights, chosen, scores, _ = router(x)
    assert scores[0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert _by_expert(weights, chosen) == pytest.approx(expected)


def test_group_limited_routing_picks_within_the_best_groups():
    logits = [math.log(p / (1 - p)) for p in (0.9, 0.1, 0.8, 0.7)]  # groups {0, 1} and {2, 3}: sums 1.0 and 1.5
    router, x = _router(logits, scoring_func="sigmoid", num_experts_per_tok=2, n_group=2, topk_group=1)
    _, chosen, _, _ = router(x)
    assert sorted(chosen[0].tolist()) == [2, 3]  # expert 0 scores highest but its group loses
    router, x = _router(logits, scoring_func="sigmoid", num_experts_per_tok=2)
    assert sorted(router(x)[1][0].tolist()) == [0, 2]
    with pytest.raises(ValueError, match="n_group"):
        ModelConfig(num_experts=4, n_group=3)


def test_replayed_experts_are_used_with_current_gates():
    router, x = _router([math.log(v) for v in (1, 2, 3, 4)], norm_topk_prob=False)
    weights, chosen, _, fresh = router(x, replay=torch.tensor([[0, 1]], dtype=torch.int16))
    assert chosen.tolist() == [[0, 1]] and weights[0].tolist() == pytest.approx([0.1, 0.2])
    assert sorted(fresh[0].tolist()) == [2, 3]
    _, chosen, _, _ = router(x, replay=torch.tensor([[-1, -1]]))  # -1: route afresh
    assert torch.equal(chosen, fresh)


def test_bias_moves_against_the_observed_load():
    config = ModelConfig(hidden_size=8, num_attention_heads=1, num_key_value_heads=1, num_experts=4,
                         num_experts_per_tok=1, bias_update_speed=0.01)
    moe = MoE(config).train()
    x = torch.randn(1, 5, 8)
    keep = torch.tensor([[True, True, True, True, False]])  # the padding token's expert is not load
    moe(x, keep, replay=torch.tensor([[[0], [0], [0], [1], [3]]]))
    stats = balance_experts(moe)
    assert moe.gate.e_score_correction_bias.tolist() == pytest.approx([-0.01, 0.0, 0.01, 0.01])  # mean load 1
    assert stats["moe_load"] == [[0.75, 0.25, 0.0, 0.0]] and stats["moe_imbalance"] == pytest.approx(3.0)
    assert 0 <= stats["moe_replay_changed"] <= 1
    assert balance_experts(moe) == {}  # counters were reset; nothing observed since
    assert moe.gate.e_score_correction_bias.tolist() == pytest.approx([-0.01, 0.0, 0.01, 0.01])


def test_sequence_balance_loss_by_hand():
    scores = torch.tensor([[[0.6, 0.2], [0.3, 0.1]]])  # sigmoid-like: rows normalise to .75/.25
    keep = torch.tensor([[True, True]])
    # both tokens to expert 0: f = [2, 0], P = [.75, .75 + ...]: P_0 = (.75 + .75) / 2
    assert sequence_balance_loss(scores, torch.tensor([[[0], [0]]]), keep).item() == pytest.approx(2 * 0.75)
    # one each: f = [1, 1], P = [.75, .25] -> 1
    assert sequence_balance_loss(scores, torch.tensor([[[0], [1]]]), keep).item() == pytest.approx(1.0)
    only_first = torch.tensor([[True, False]])
    assert sequence_balance_loss(scores, torch.tensor([[[1], [0]]]), only_first).item() == pytest.approx(2 * 0.25)


def test_aux_loss_is_alpha_times_the_balance_loss_of_the_training_pass():
    config = ModelConfig(hidden_size=8, num_attention_heads=1, num_key_value_heads=1, num_experts=4,
                         scoring_func="sigmoid", aux_loss_alpha=0.1)
    torch.manual_seed(0)
    moe, x = MoE(config).train(), torch.randn(2, 5, 8)
    keep = torch.tensor([[True] * 5, [False, True, True, True, True]])
    moe(x, keep)
    _, chosen, scores, _ = moe.gate(x.reshape(-1, 8))
    expected = 0.1 * sequence_balance_loss(scores.view(2, 5, 4), chosen.view(2, 5, 2), keep)
    assert moe.aux_loss.item() == pytest.approx(expected.item())
    moe.aux_loss.backward()
    assert moe.gate.weight.grad.abs().sum() > 0
    moe.eval()(x, keep)
    assert moe.aux_loss is None


@pytest.fixture(scope="module")
def tiny_moe():
    pairs = reference_pairs(ENV, range(16))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, **DEEPSEEK))
    return model, tok, [p for p, _ in pairs]


def test_routing_replay_reproduces_the_sampled_pass(tiny_moe):
    model, tok, prompts = tiny_moe
    rollout = sample(model, tok, prompts[:4], max_new_tokens=12, temperature=1.0,
                     generator=torch.Generator().manual_seed(0))
    batch, mask = rollout.batch, rollout.batch.completion_mask
    assert rollout.routing.shape == (*batch.input_ids.shape, 2, 2)  # layers 1 and 2 are MoE
    with torch.no_grad():
        replayed, _ = completion_logprobs(model, batch, routing=rollout.routing)
        assert torch.allclose(replayed * mask, rollout.logprobs, atol=1e-5)
        for layer in moe_layers(model):  # the balancing bias picks other experts from now on
            layer.gate.e_score_correction_bias.copy_(torch.tensor([1.0, 1.0, -1.0, -1.0]))
        fresh, _ = completion_logprobs(model, batch)
        again, _ = completion_logprobs(model, batch, routing=rollout.routing)
    assert torch.allclose(again * mask, rollout.logprobs, atol=1e-5)  # the bias never enters the gate weights
    assert not torch.allclose(fresh * mask, rollout.logprobs, atol=1e-3)

    model.train()
    logp, _ = completion_logprobs(model, batch, routing=rollout.routing)
    (logp * mask).sum().backward()
    stats = balance_experts(model)
    model.eval()
    for layer in moe_layers(model):
        assert layer.gate.weight.grad is not None and layer.gate.weight.grad.abs().sum() > 0
        layer.gate.e_score_correction_bias.zero_()
    model.zero_grad(set_to_none=True)
    assert 0 < stats["moe_replay_changed"] <= 1  # the bias flipped some choices that replay kept
    with pytest.raises(ValueError, match="routing has shape"):
        model(batch.input_ids, routing=rollout.routing[:, :, :1])


def _hf_qwen3_moe(**extra):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.Qwen3MoeConfig(vocab_size=97, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         head_dim=16, num_experts=4, num_experts_per_tok=2, **extra)
    return _randomised(transformers.Qwen3MoeForCausalLM(config).eval())


@torch.no_grad()
def _randomised(model):
    """Norm weights away from 1, routers far from uniform and a balancing bias that changes choices
    (where the family has one), so parity tests all of them."""
    for name, p in model.named_parameters():
        if "norm" in name:
            p.normal_(1, 0.5)
        elif name.endswith("gate.weight"):
            p.normal_(0, 0.5)
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            b.normal_(0, 0.3)
    return model


def _assert_parity(ours, ref):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 97, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, mask)
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("extra", [{}, {"norm_topk_prob": True, "mlp_only_layers": [1]}])
def test_qwen3_moe_logits_match_transformers(tmp_path, extra):
    ref = _hf_qwen3_moe(**extra)
    ref.save_pretrained(tmp_path)
    ours, _ = load_pretrained(tmp_path)
    assert ours.config.model_type == "qwen3_moe" and ours.config.num_experts == 4
    assert [block.sparse for block in ours.model.layers] == [True, not extra]
    _assert_parity(ours, ref)


def _hf_deepseek_v3(**extra):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.DeepseekV3Config(
        vocab_size=97, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
        first_k_dense_replace=1, kv_lora_rank=12, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
        max_position_embeddings=64, rope_scaling=None, **extra)
    return _randomised(transformers.DeepseekV3ForCausalLM(config).eval())


@pytest.mark.parametrize("extra", [{"q_lora_rank": 16, "n_group": 2, "topk_group": 1},
                                   {"q_lora_rank": None, "rope_interleave": False, "n_group": 1, "topk_group": 1}])
def test_deepseek_v3_logits_match_transformers(tmp_path, extra):
    ref = _hf_deepseek_v3(**extra)
    ref.save_pretrained(tmp_path)
    ours, _ = load_pretrained(tmp_path)
    assert ours.config.mla and ours.config.num_experts == 8 and ours.config.scoring_func == "sigmoid"
    assert [block.sparse for block in ours.model.layers] == [False, True]
    _assert_parity(ours, ref)


def test_latent_attention_caches_and_replays_and_transformers_reads_it(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = Tokenizer.train_bpe(["hello world <answer>1 + 2</answer> think"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=48,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                  model_type="deepseek_v3", num_experts=4, n_shared_experts=1, scoring_func="sigmoid",
                                  moe_intermediate_size=16, kv_lora_rank=12, q_lora_rank=16, tie_word_embeddings=False))
    out = sample(model, tok, ["hello", "hello world think"], max_new_tokens=10, temperature=0, stop=())
    with torch.no_grad():  # the cached, sampled pass and one full pass agree (with the sampled routing)
        logp, _ = completion_logprobs(model, out.batch, routing=out.routing)
    assert torch.allclose(logp * out.batch.completion_mask, out.logprobs, atol=1e-5)
    save_pretrained(model, tok, tmp_path)
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, keep = out.batch.input_ids, out.batch.attention_mask.bool()
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=keep.long()).logits
        assert torch.allclose(model(ids, keep.long())[keep], expected[keep], atol=1e-5)


def test_fused_expert_checkpoint_loads(tmp_path):
    from safetensors.torch import save_file

    ref = _hf_qwen3_moe()
    ref.save_pretrained(tmp_path)
    state = ref.state_dict()
    assert any(k.endswith("experts.gate_up_proj") for k in state)  # transformers 5 fuses experts in memory
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    _assert_parity(load_pretrained(tmp_path)[0], ref)


def test_moe_config_round_trips_and_transformers_reads_qwen3_moe(tmp_path):
    torch.manual_seed(0)
    ours = DecoderLM(ModelConfig(vocab_size=97, **DEEPSEEK, aux_loss_alpha=0.01, mlp_only_layers=[2]))
    moe_layers(ours)[0].gate.e_score_correction_bias.fill_(0.5)
    save_pretrained(ours, None, tmp_path / "ds")
    loaded, _ = load_pretrained(tmp_path / "ds")
    assert loaded.config == ours.config
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), loaded.state_dict().values()))
    dense = ModelConfig().to_hf()
    assert "num_experts" not in dense and "scoring_func" not in dense  # dense config.json unchanged

    transformers = pytest.importorskip("transformers")
    qwen = DecoderLM(ModelConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                                 num_key_value_heads=2, head_dim=16, model_type="qwen3_moe", num_experts=4,
                                 moe_intermediate_size=16))
    save_pretrained(qwen, None, tmp_path / "qwen")
    _assert_parity(qwen, transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "qwen").eval())
    with pytest.raises(ValueError, match="qwen3_moe has softmax gating"):
        ModelConfig(model_type="qwen3_moe", num_experts=4, scoring_func="sigmoid")
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        ModelConfig(num_experts=2, num_experts_per_tok=3)


def test_grpo_step_on_a_moe_policy_reports_expert_load(tiny_moe):
    base, tok, _ = tiny_moe
    policy = DecoderLM(base.config)
    policy.load_state_dict(base.state_dict())
    cfg = TrainConfig(tasks_per_step=2, group_size=4, max_new_tokens=12, temperature=1.5, lr=1e-2, mu=2,
                      minibatch_size=4, filter_zero_variance=False, overlong_buffer=12)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    envs = rewardgym.make_vec(ENV, num_envs=8, group_size=4)
    try:
        row = grpo_step(cfg, 0, envs, policy, tok, None, optimizer)
    finally:
        envs.close()
    assert row["optimizer_steps"] == 4
    assert len(row["moe_load"]) == 2 and all(sum(layer) == pytest.approx(1.0) for layer in row["moe_load"])
    assert row["moe_imbalance_max"] >= row["moe_imbalance"] >= 1.0
    assert 0 <= row["moe_replay_changed"] <= 1
    assert any(layer.gate.e_score_correction_bias.abs().sum() > 0 for layer in moe_layers(policy))


def test_train_command_builds_and_resumes_a_moe_policy(tmp_path):
    args = [f"run_dir={tmp_path}", "vocab_size=300", "hidden_size=32", "intermediate_size=64", "num_layers=2",
            "num_heads=2", "num_kv_heads=1", "num_experts=4", "moe_intermediate_size=16", "aux_loss_alpha=0.001",
            "sft_examples=16", "sft_steps=4", "sft_batch_size=8", "tasks_per_step=2", "group_size=4",
            "max_new_tokens=16", "eval_tasks=2", "checkpoint_every=1", "plot=false", "overlong_buffer=16",
            "filter_zero_variance=false"]
    assert train_main(args + ["steps=1"]) == 0
    assert train_main(args + ["steps=2"]) == 0  # resumes from the step-1 checkpoint
    model, _ = load_pretrained(tmp_path / "checkpoints" / "step-000002")
    assert model.config.num_experts == 4 and model.config.scoring_func == "sigmoid"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all("moe_replay_changed" in r for r in rows)
    straight = tmp_path / "straight"
    assert train_main(args + ["steps=2", f"run_dir={straight}"]) == 0
    other, _ = load_pretrained(straight / "checkpoints" / "step-000002")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


# -- two gloo processes: expert parallelism, and data-parallel GRPO on a MoE policy ----------------

REWARDS = [1.0, 0, 0, 1, 0, 1, 1, 0]  # two groups of 4, one per rank


def _expert_parallel(moe_case, rank):
    """Rank ``rank``'s output and expert gradients for its own sequence, experts sharded over the ranks."""
    from rewardgym.trainers.models.moe import shard_experts

    moe = MoE(moe_case["config"]).train()
    moe.load_state_dict(moe_case["state"])
    kept = shard_experts(moe)
    out = moe(moe_case["x"][rank:rank + 1])
    (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
    return {"out": out.detach(), "grads": {e: moe.experts[e].down_proj.weight.grad for e in kept}}


def _grpo_update(grpo_case, dp):
    """One replayed GRPO update (aux loss and bias balancing on) of this rank's rows of the batch."""
    from rewardgym.trainers import grpo
    from rewardgym.trainers.rollout import Rollout
    from rewardgym.trainers.train import grpo_update

    policy = DecoderLM(grpo_case["config"])
    policy.load_state_dict(grpo_case["state"])
    full, rewards = grpo_case["rollout"], torch.tensor(REWARDS)
    owned = range(4 * dp.rank, 4 * dp.rank + 4) if dp.world_size > 1 else range(8)
    rows = torch.arange(owned.start, owned.stop)
    mine = Rollout(full.batch.select(rows), full.logprobs[rows], [full.texts[i] for i in rows],
                   [full.lengths[i] for i in rows], [full.truncated[i] for i in rows], full.routing[rows])
    stats = grpo_update(TrainConfig(mu=2, minibatch_size=3), policy, None, torch.optim.SGD(policy.parameters(), lr=0.1),
                        mine, grpo.group_advantages(rewards, 4), torch.ones(8, dtype=torch.bool),
                        torch.Generator().manual_seed(7), owned=owned, dp=dp)
    return policy.state_dict(), stats


def _two_rank_worker(rank, store, moe_case, grpo_case, out):
    import torch.distributed as dist

    from rewardgym.trainers.distributed import DataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        result = {"ep": _expert_parallel(moe_case, rank), "dp": _grpo_update(grpo_case, DataParallel(rank, 2))}
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tiny_moe, tmp_path_factory):
    """The cases, and what each of two gloo ranks computed for them."""
    config = ModelConfig(hidden_size=16, num_attention_heads=1, num_key_value_heads=1, num_experts=4,
                         num_experts_per_tok=2, moe_intermediate_size=8, n_shared_experts=1, scoring_func="sigmoid")
    torch.manual_seed(0)
    moe = MoE(config)
    with torch.no_grad():
        moe.gate.weight.normal_(0, 1.0)
    moe_case = {"config": config, "state": moe.state_dict(), "x": torch.randn(2, 7, 16)}
    base, tok, prompts = tiny_moe
    policy = DecoderLM(ModelConfig(**{**vars(base.config), "aux_loss_alpha": 1.0, "bias_update_speed": 0.01}))
    policy.load_state_dict(base.state_dict())
    rollout = sample(policy, tok, [p for p in prompts[:2] for _ in range(4)], max_new_tokens=12,
                     generator=torch.Generator().manual_seed(0))
    for row in (0, 1, 5):  # shorter completions, so the ranks' shares of tokens and of sequences differ
        rollout.batch.attention_mask[row, rollout.batch.prompt_width + 3:] = 0
        rollout.batch.completion_mask[row, 3:] = 0
        rollout.logprobs[row, 3:] = 0
    grpo_case = {"config": policy.config, "state": policy.state_dict(), "rollout": rollout}
    out = tmp_path_factory.mktemp("ranks")
    torch.multiprocessing.spawn(_two_rank_worker, nprocs=2, join=True,
                                args=(str(out / "store"), moe_case, grpo_case, str(out)))
    return moe_case, grpo_case, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_expert_parallel_matches_one_process(two_ranks):
    moe_case, _, ranks = two_ranks
    whole = MoE(moe_case["config"]).train()
    whole.load_state_dict(moe_case["state"])
    outs = [whole(moe_case["x"][i:i + 1]) for i in range(2)]
    sum((out * torch.arange(out.numel()).view_as(out).sin()).sum() for out in outs).backward()
    for rank, got in enumerate(result["ep"] for result in ranks):
        assert torch.allclose(got["out"], outs[rank], atol=1e-6)
        assert sorted(got["grads"]) == [2 * rank, 2 * rank + 1]  # its half of the experts
        for expert, grad in got["grads"].items():  # collected from both ranks' tokens
            assert torch.allclose(grad, whole.experts[expert].down_proj.weight.grad, atol=1e-6)


def test_data_parallel_moe_update_equals_one_process(two_ranks):
    from rewardgym.trainers.distributed import SINGLE

    _, grpo_case, ranks = two_ranks
    weights, stats = _grpo_update(grpo_case, SINGLE)
    first, second = (result["dp"] for result in ranks)
    biases = [k for k in weights if k.endswith("e_score_correction_bias")]
    assert any(not torch.equal(weights[k], grpo_case["state"][k]) for k in biases)  # balancing moved them
    for k in weights:  # both ranks took the single-process step, balancing bias included
        assert torch.equal(first[0][k], second[0][k]) and torch.allclose(first[0][k], weights[k], atol=1e-6), k
    loads = [torch.tensor(row.pop("moe_load")) for row in (stats, first[1], second[1])]  # from the global counts
    assert torch.allclose(loads[1], loads[0], atol=1e-12) and torch.equal(loads[1], loads[2])
    assert first[1] == pytest.approx(stats, rel=1e-5, abs=1e-7) and second[1] == first[1]
