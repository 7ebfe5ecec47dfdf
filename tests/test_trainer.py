"""The learner end to end on a tiny model: SFT and GRPO steps learn, resume is exact, config and data errors."""

import json

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers import grpo  # noqa: E402
from rewardgym.trainers.cli import sft_main, train_main  # noqa: E402
from rewardgym.trainers.config import TrainConfig, parse_config  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, load_pretrained  # noqa: E402
from rewardgym.trainers.rollout import completion_logprobs, sample  # noqa: E402
from rewardgym.trainers.sft import load_pairs, reference_pairs, run_sft, sft_batch, sft_loss  # noqa: E402
from rewardgym.trainers.train import grpo_update  # noqa: E402

pytestmark = pytest.mark.torch
ENV = "rewardgym/Countdown-Easy-v0"
TINY = [f"env={ENV}", "vocab_size=300", "hidden_size=32", "intermediate_size=64", "num_layers=1", "num_heads=2",
        "num_kv_heads=1", "sft_examples=32", "sft_steps=30", "sft_batch_size=8", "sft_lr=0.01", "tasks_per_step=2",
        "group_size=4", "max_new_tokens=40", "eval_tasks=4", "checkpoint_every=2", "plot=false", "lr=0.01", "temperature=1.5",
        "overlong_buffer=30"]  # length shaping gives reward variance even when no answer is right


@pytest.fixture(scope="module")
def tiny():
    pairs = reference_pairs(ENV, range(16))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1))
    return model, tok, pairs


def test_sft_lowers_the_loss(tiny):
    model, tok, pairs = tiny
    model = DecoderLM(model.config)
    losses = run_sft(model, tok, pairs, steps=15, batch_size=8, lr=1e-2, seed=0)
    assert losses[-1] < 0.7 * losses[0]
    assert sft_loss(model, sft_batch(tok, pairs[:8])).item() < losses[0]


def test_grpo_step_changes_parameters_and_lowers_the_surrogate_loss(tiny):
    base, tok, pairs = tiny
    policy = DecoderLM(base.config)
    policy.load_state_dict(base.state_dict())
    prompts = [p for p, _ in pairs[:2] for _ in range(4)]
    rollout = sample(policy, tok, prompts, max_new_tokens=10, temperature=1.0,
                     generator=torch.Generator().manual_seed(0))
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 0, 0])
    advantages = grpo.group_advantages(rewards, 4)
    cfg = TrainConfig(lr=1e-2, mu=4, minibatch_size=0, eps_low=10, eps_high=10)  # no clipping: loss keeps falling

    def surrogate():
        with torch.no_grad():
            logp, _ = completion_logprobs(policy, rollout.batch)
            loss, _ = grpo.policy_loss(logp, rollout.logprobs, advantages, rollout.batch.completion_mask)
        return loss.item()

    before = surrogate()
    assert before == pytest.approx(0.0, abs=1e-5)  # ratio 1 and zero-mean advantages per group
    weights = [p.detach().clone() for p in policy.parameters()]
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    stats = grpo_update(cfg, policy, None, optimizer, rollout, advantages, torch.ones(8, dtype=torch.bool),
                        torch.Generator().manual_seed(0))
    assert stats["optimizer_steps"] == 4 and stats["grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(weights, policy.parameters()))
    assert surrogate() < before - 1e-3


def test_zero_variance_batch_takes_no_step(tiny):
    policy, tok, pairs = tiny
    rollout = sample(policy, tok, [pairs[0][0]] * 4, max_new_tokens=4, temperature=1.0)
    optimizer = torch.optim.AdamW(policy.parameters())
    nothing = torch.zeros(4, dtype=torch.bool)
    stats = grpo_update(TrainConfig(), policy, None, optimizer, rollout, torch.zeros(4), nothing, torch.Generator())
    assert stats["optimizer_steps"] == 0


def _state(run_dir):
    model, _ = load_pretrained(run_dir / "checkpoints" / "step-000004")
    return model.state_dict()


def _metrics(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time") and k != "tokens_per_s"} for r in rows]


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train_main([f"run_dir={full}", "steps=4", "beta=0.05", "mu=2", "minibatch_size=4", *TINY]) == 0
    assert train_main([f"run_dir={cut}", "steps=2", "beta=0.05", "mu=2", "minibatch_size=4", *TINY]) == 0
    (cut / "checkpoints" / ".step-000003.partial").mkdir()  # a checkpoint being written when killed
    with (cut / "metrics.jsonl").open("a") as handle:  # a step that ran but was never checkpointed
        handle.write(json.dumps({"step": 3, "reward_mean": 99}) + "\n")
    assert train_main([f"run_dir={cut}", "steps=4", "beta=0.05", "mu=2", "minibatch_size=4", *TINY]) == 0
    a, b = _state(full), _state(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(full) == _metrics(cut)
    for run in (full, cut):
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000002", "step-000004"]
    summary = json.loads((full / "summary.json").read_text())
    assert {"accuracy_start", "accuracy_end"} <= set(summary)
    assert all(r["optimizer_steps"] > 0 and r["kl"] > 0 for r in _metrics(full)[1:])
    row = _metrics(full)[-1]
    for key in ("reward_mean", "reward_correctness", "accuracy", "response_length", "kl", "clip_fraction", "entropy",
                "grad_norm"):
        assert key in row


def test_sft_command_writes_a_loadable_model(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Q{i}: 2+{i}?", "completion": f"<answer>{2 + i}</answer>"})
                              for i in range(10)))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert sft_main([f"run_dir={tmp_path / 'run'}", f"data={data}", "steps=3", "batch_size=4", "vocab_size=280",
                         "hidden_size=32", "intermediate_size=64", "num_layers=1", "threads=1"]) == 0
        assert torch.get_num_threads() == 1  # the threads setting applies to sft as to train
    finally:
        torch.set_num_threads(before)
    model, tok = load_pretrained(tmp_path / "run" / "model")
    assert tok.decode(tok.encode("<answer>7</answer>")) == "<answer>7</answer>"


def test_sft_data_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected an object"):
        load_pairs(bad)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"prompt": ["p"], "completion": ["c"]}), tmp_path / "ok.parquet")
    assert load_pairs(tmp_path / "ok.parquet") == [("p", "c")]


def test_config_from_yaml_with_overrides(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\nbeta: 0.04\nmodel: null\naggregation: seq_mean\n")
    cfg = parse_config(TrainConfig, ["--config", str(path), "beta=0", "--lr", "1e-4", "--scale-std=false"])
    assert (cfg.steps, cfg.beta, cfg.lr, cfg.scale_std, cfg.aggregation) == (7, 0.0, 1e-4, False, "seq_mean")
    with pytest.raises(ValueError, match="unknown setting 'step'; did you mean 'steps'"):
        parse_config(TrainConfig, ["step=3"])
    with pytest.raises(ValueError, match="steps: expected int, got 'many'"):
        parse_config(TrainConfig, ["steps=many"])
    with pytest.raises(ValueError, match="aggregation 'mean' not one of"):
        parse_config(TrainConfig, ["aggregation=mean"])
    with pytest.raises(ValueError, match="temperature > 0"):
        parse_config(TrainConfig, ["temperature=0"])
    with pytest.raises(ValueError, match="closeness_scale > 0"):
        parse_config(TrainConfig, ["closeness_scale=0"])
    assert train_main(["bogus=1"]) == 2
    assert "unknown setting 'bogus'" in capsys.readouterr().err


def test_moving_average_by_hand():
    from rewardgym.trainers.plot import moving_average

    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([4.0, 2.0], 5) == [4.0, 3.0]
    assert moving_average([], 3) == []


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from rewardgym.trainers.plot import plot_curves

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "reward_mean": s / 10, "accuracy": s / 20,
                                           "response_length": 30 - s}) + "\n" for s in range(1, 6)))
    out = plot_curves(metrics, tmp_path / "curves.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_curriculum_state_travels_with_checkpoints(tmp_path):
    from rewardgym.trainers.checkpoint import latest_checkpoint, load_checkpoint

    run = tmp_path / "cur"
    args = TINY + [f"run_dir={run}", "curriculum=true", "curriculum_window=64", "env=rewardgym/Countdown-v0",
                   "closeness=0.5"]  # the shaping wraps the curriculum, whose state still travels
    assert train_main(args + ["steps=2"]) == 0
    _, _, state = load_checkpoint(latest_checkpoint(run))
    assert len(state["curriculum"]["window"]) == 4  # 2 steps x 2 groups, window not yet full
    assert train_main(args + ["steps=4"]) == 0  # resumes at step 2 with the saved window
    _, _, state = load_checkpoint(latest_checkpoint(run))
    assert len(state["curriculum"]["window"]) == 8 and state["curriculum"]["level"] == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["curriculum_level"] == 0 for r in rows)
    assert all(0 <= r["reward_closeness"] <= 0.5 for r in rows)
