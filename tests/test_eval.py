"""Batch evaluation: estimators against hand computations, a learner checkpoint evaluated end to end,
a killed run resumed to exactly the uninterrupted rows, completions files, rejection sampling."""

import json
import math
import subprocess
import sys
from fractions import Fraction

import pyarrow.parquet as pq
import pytest

import rewardgym
from rewardgym.cli import main
from rewardgym.eval.metrics import TaskSamples, majority_correct, mean_and_stderr, pass_at_k, summarise

ENV = "rewardgym/Countdown-Easy-v0"
SEED = 20_000_000
TIMES = ["time_generate", "time_verify"]


# -- estimators ------------------------------------------------------------------------------------

def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3)/C(5,3)
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k wrong samples: some draw of k always has a right one
    assert pass_at_k(5, 0, 3) == 0.0
    exact = 1 - Fraction(math.comb(100, 50), math.comb(200, 50))
    assert pass_at_k(200, 100, 50) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4, rel=1e-9)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)


def test_majority_vote_and_standard_error():
    assert majority_correct(["3", "4", "3", None], [True, False, True, False])
    assert not majority_correct(["4", "3", "3", "4"], [False, True, True, False])  # tie: the answer seen first
    assert not majority_correct([None, None], [False, False])
    mean, se = mean_and_stderr([1, 0, 0, 1])
    assert mean == 0.5 and se == pytest.approx(math.sqrt(1 / 3) / 2)
    assert mean_and_stderr([0.7]) == (0.7, None)


def test_summary_averages_per_task_with_errors_over_tasks():
    a = TaskSamples([1, 0, 1, 0], [True, False, True, False], ["3", "4", "3", None])
    b = TaskSamples([0, 0, 0, 0], [False] * 4, [None] * 4)
    s = summarise([a, b], ks=(1, 4, 8))
    assert (s["tasks"], s["samples"]) == (2, 8)
    assert (s["reward"], s["reward_stderr"]) == pytest.approx((0.25, 0.25))
    assert (s["pass@1"], s["pass@1_stderr"]) == pytest.approx((0.25, 0.25))
    assert (s["pass@4"], s["pass@4_stderr"]) == pytest.approx((0.5, 0.5))  # task a: 1, task b: 0
    assert (s["maj@4"], s["maj@4_stderr"]) == pytest.approx((0.5, 0.5))
    assert "pass@8" not in s  # more than the samples per task
    assert "maj@1" not in summarise([TaskSamples([1], [True], ["3"])])
    assert not any(k.startswith("maj") for k in summarise([b]))  # nothing parsed: answers not comparable


# -- a learner checkpoint, end to end ----------------------------------------------------------------

torch = pytest.importorskip("torch")

from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, save_pretrained  # noqa: E402
from rewardgym.trainers.sft import load_pairs, reference_pairs  # noqa: E402


def _tiny(vocab: int | None = None) -> tuple[DecoderLM, Tokenizer]:
    pairs = reference_pairs(ENV, range(8))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(vocab_size=vocab or tok.vocab_size, hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)), tok


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as the learner leaves it: its config.json, start/ and one checkpoint (other weights)."""
    root = tmp_path_factory.mktemp("run")
    (root / "config.json").write_text('{"env": "rewardgym/Countdown-Easy-v0"}')
    model, tok = _tiny()
    save_pretrained(model, tok, root / "start")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    save_pretrained(model, tok, root / "checkpoints" / "step-000002")
    return root


def _eval_args(model, out, *extra):
    return ["eval", "--model", str(model), "--env", "Countdown-Easy-v0", "--n", "3", "--samples", "2",
            "--max-new-tokens", "6", "--batch-size", "2", "--threads", "1", "--no-progress", "--out", str(out), *extra]


def test_default_tasks_are_the_learners_held_out_seeds():
    from rewardgym.eval.tasks import EVAL_SEEDS
    from rewardgym.trainers.train import EVAL_SEEDS as LEARNER_EVAL_SEEDS

    assert EVAL_SEEDS == LEARNER_EVAL_SEEDS == SEED


def test_checkpoint_evaluated_end_to_end(run_dir, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    assert main(_eval_args(run_dir / "start", out)) == 0
    rows = pq.read_table(out).to_pylist()
    assert [(r["task_index"], r["sample"]) for r in rows] == [(i, s) for i in range(3) for s in range(2)]
    env = rewardgym.make(ENV).unwrapped
    for r in rows:
        task = env.generate(SEED + r["task_index"])
        verdict = env.verifier.verify(r["completion"], task)
        assert (r["task_id"], r["prompt"], r["model"], r["step"]) == (task.id, task.prompt, str(run_dir / "start"), 0)
        assert (r["reward"], r["correct"], r["reason"]) == (verdict.reward, verdict.correct, verdict.reason)
        assert r["reward_components"] == [("correctness", verdict.reward)]
        assert 1 <= r["completion_tokens"] <= 6 and r["time_generate"] > 0
    summary = json.loads(out.with_suffix(".json").read_text())
    (score,) = summary["scores"]
    assert score["tasks"] == 3 and score["samples"] == 6 and {"pass@1", "pass@2"} <= set(score)
    assert "pass@1" in capsys.readouterr().out
    assert not out.with_name("results.parquet.parts").exists()

    before = out.stat().st_mtime_ns  # the same command again: already complete, nothing regenerated
    assert main(_eval_args(run_dir / "start", out)) == 0
    assert out.stat().st_mtime_ns == before and "already complete" in capsys.readouterr().err


def test_run_killed_midway_resumes_to_the_uninterrupted_rows(run_dir, tmp_path):
    whole, resumed = tmp_path / "whole.parquet", tmp_path / "resumed.parquet"
    assert main(_eval_args(run_dir / "start", whole)) == 0
    killer = ("import os, signal, sys\n"
              "from rewardgym.eval.store import Shards\n"
              "real = Shards.write\n"
              "def write(self, name, rows):\n"
              "    real(self, name, rows)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "Shards.write = write\n"
              "from rewardgym.cli import main\n"
              "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", killer, *_eval_args(run_dir / "start", resumed)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    parts = resumed.with_name("resumed.parquet.parts")
    assert not resumed.exists() and len(list(parts.glob("*.parquet"))) == 1
    assert main(_eval_args(run_dir / "start", resumed, "--seed", "5")) == 2  # other settings: kept, not mixed
    assert len(list(parts.glob("*.parquet"))) == 1
    assert main(_eval_args(run_dir / "start", resumed)) == 0
    assert pq.read_table(resumed).drop_columns(TIMES).equals(pq.read_table(whole).drop_columns(TIMES))
    assert not parts.exists()


def test_run_directory_compares_checkpoints_with_a_plot(run_dir, tmp_path, capsys):
    out = tmp_path / "cmp.parquet"
    assert main(["eval", "--model", str(run_dir), "--env", ENV, "--n", "2", "--max-new-tokens", "4",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    scores = json.loads(out.with_suffix(".json").read_text())["scores"]
    assert [s["step"] for s in scores] == [0, 2]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr()
    assert "step-000002" in printed.out and "start" in printed.out
    progress = [line for line in printed.err.splitlines() if "all models:" in line]
    # each line's accuracy counts its own model's samples (2 tasks), the total counts everything so far
    assert [line.split(": ", 1)[1].split(" samples")[0] for line in progress] == ["2", "2"]
    assert "(all models: 4 samples" in progress[-1]


def test_clear_errors_and_no_user_file_overwritten(run_dir, tmp_path, capsys):
    out = tmp_path / "mine.parquet"
    assert main(_eval_args(tmp_path / "nowhere", out)) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert main(["eval", "--model", str(run_dir), "--env", "Countdwn-Easy-v0", "--out", str(out)]) == 2
    assert "did you mean rewardgym/Countdown-Easy-v0" in capsys.readouterr().err
    small, tok = _tiny(vocab=100)
    save_pretrained(small, tok, tmp_path / "small")
    assert main(_eval_args(tmp_path / "small", out)) == 2
    assert "model/tokenizer mismatch" in capsys.readouterr().err
    out.write_text("my data")
    assert main(_eval_args(run_dir / "start", out)) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and out.read_text() == "my data"
    plot = tmp_path / "other.png"
    plot.write_bytes(b"my picture")
    assert main(_eval_args(run_dir / "start", tmp_path / "other.parquet")) == 2
    assert f"{plot} exists" in capsys.readouterr().err and not (tmp_path / "other.parquet.parts").exists()


# -- completions from elsewhere, and rejection sampling ---------------------------------------------------

@pytest.fixture
def completions(tmp_path):
    """Task 0: the reference and a wrong answer; task 1 (by id): a long and a short reference."""
    env = rewardgym.make(ENV).unwrapped
    t0, t1 = env.generate(SEED), env.generate(SEED + 1)
    ref0, ref1 = env.reference(t0), env.reference(t1)
    rows = [{"task_index": 0, "completion": ref0}, {"task_index": 0, "completion": "<answer>1</answer>"},
            {"task_id": t1.id, "completion": "<think>" + "x " * 50 + "</think>" + ref1, "sample": 0},
            {"task_id": t1.id, "completion": ref1, "sample": 1, "prompt": "chat-formatted elsewhere"}]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, (t0.prompt, ref0), (t1.prompt, ref1)


def test_completions_file_is_verified_and_scored(completions, tmp_path):
    path, _, _ = completions
    out = tmp_path / "ext.parquet"
    assert main(["eval", "--completions", str(path), "--env", ENV, "--n", "2", "--no-progress", "--out", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    assert [(r["task_index"], r["sample"], r["correct"]) for r in rows] == [(0, 0, True), (0, 1, False),
                                                                           (1, 0, True), (1, 1, True)]
    assert rows[3]["prompt"] == "chat-formatted elsewhere" and rows[0]["time_generate"] is None
    (score,) = json.loads(out.with_suffix(".json").read_text())["scores"]
    assert score["pass@1"] == pytest.approx(0.75) and score["pass@2"] == 1.0


def test_completions_file_errors_name_the_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task_index": 0, "completion": "x"}\n{"task_index": 0, "answer": "x"}\n')
    out = tmp_path / "o.parquet"
    assert main(["eval", "--completions", str(path), "--env", ENV, "--n", "2", "--out", str(out)]) == 2
    assert f"{path}:2: unknown field(s) ['answer']" in capsys.readouterr().err


def test_sample_keeps_the_shortest_correct_completions_for_sft(completions, tmp_path):
    path, (p0, ref0), (p1, ref1) = completions
    out = tmp_path / "sft.parquet"
    assert main(["sample", "--completions", str(path), "--env", ENV, "--n", "2", "--keep", "correct",
                 "--shortest", "1", "--no-progress", "--out", str(out)]) == 0
    assert load_pairs(out) == [(p0, ref0), ("chat-formatted elsewhere", ref1)]
    assert pq.read_table(tmp_path / "sft.results.parquet").num_rows == 4
