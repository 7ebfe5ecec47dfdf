"""The learner on a CUDA GPU against the same work on the CPU: FP8 kernels, the GRPO update, sampling,
and whole runs through the CLI that resume on the CPU. Every test skips without CUDA
(``pytest -m gpu tests/test_gpu.py`` on a GPU machine; benchmarks/gpu/check.sh runs it).

Tolerances: float32 work with TF32 off differs between devices only in rounding and summation
order, so a GPU result should sit about as far from the CPU's as float32 sits from float64 on the
CPU; the bounds below are about 10x those float32-vs-float64 distances, measured on the same
models and batches (noted at each test), and far below what a wrong mask or position gives.
FP8 GEMMs are compared with the emulation on the same quantised operands, where only the
accumulation differs (Hopper's FP8 tensor cores keep ~14 bits inside a 128-element slice: a few
1e-4 of a row's largest value for these sizes) plus, for BF16 output, its rounding (half an ulp,
2^-9 relative); a scale applied to the wrong tile is off by 2x or more.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rewardgym.trainers import grpo  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, Tokenizer, fp8  # noqa: E402
from rewardgym.trainers.models.fp8 import (  # noqa: E402
    FP8Linear, backend_for, matmul_emulated, quantize_blocks, quantize_tiles, scaled_matmul)
from rewardgym.trainers.rollout import Rollout, completion_logprobs, sample  # noqa: E402
from rewardgym.trainers.sft import reference_pairs  # noqa: E402
from rewardgym.trainers.train import grpo_update  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.gpu, pytest.mark.torch,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ENV = "rewardgym/Countdown-Easy-v0"
TINY = ["vocab_size=300", "hidden_size=32", "intermediate_size=64", "num_layers=1", "num_heads=2", "num_kv_heads=1",
        "sft_examples=16", "sft_steps=4", "sft_batch_size=8", "tasks_per_step=2", "group_size=4", "max_new_tokens=16",
        "eval_tasks=8", "checkpoint_every=1", "plot=false", "progress=false", "lr=0.01", "temperature=1.5",
        "overlong_buffer=10", "beta=0.05"]


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 matmuls on the GPU, so differences from the CPU are summation order only."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


# -- FP8 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_dtype, tolerance", [(torch.float32, 2e-3), (torch.bfloat16, 5e-3)])
@pytest.mark.parametrize("right", ["tiles", "blocks"])  # 1x128 x 1x128 and 1x128 x 128x128 operands
@pytest.mark.parametrize("m, n, k", [(1, 128, 128), (16, 256, 384), (37, 200, 300), (130, 129, 1000)])
def test_fp8_kernel_matches_the_emulation(m, n, k, right, out_dtype, tolerance):
    cuda = torch.device("cuda")
    generator = torch.Generator(device=cuda).manual_seed(m * n + k)
    a = quantize_tiles(torch.randn(m, k, device=cuda, generator=generator))
    w = torch.randn(n, k, device=cuda, generator=generator) * 0.05
    b = quantize_tiles(w) if right == "tiles" else quantize_blocks(w)
    backend = backend_for(cuda, out_dtype, b.block_rows)
    got = scaled_matmul(a, b, out_dtype)
    want = matmul_emulated(a, b)
    assert got.shape == (m, n) and got.dtype == out_dtype
    error = ((got.float() - want).abs().amax(1) / want.abs().amax(1)).max()
    assert error <= tolerance, f"{backend} backend: largest row error {float(error):.3g}"


def _fp8_linear_results(layer: FP8Linear, x: torch.Tensor, dy: torch.Tensor, device: str) -> list[torch.Tensor]:
    """y, dx, dW and db of a copy of ``layer`` on ``device`` (float32, on the CPU)."""
    here = FP8Linear(layer.in_features, layer.out_features).to(device=device, dtype=layer.weight.dtype)
    here.load_state_dict(layer.state_dict())
    xs = x.to(device, copy=True).requires_grad_(True)
    y = here(xs)
    y.backward(dy.to(device))
    return [t.detach().float().cpu() for t in (y, xs.grad, here.weight.grad, here.bias.grad)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_linear_forward_and_backward_match_the_emulation(dtype, monkeypatch):
    """Kernel against emulation on the GPU's own quantised operands; in float32 also against the CPU.
    Not BF16 against the CPU: there the two devices' quantisations may round an element differently
    (their amax/448 scales can differ by an ulp), and one E4M3 ulp is 6% of that element (seen on an
    H100: 7 of 25,600 bytes, moving dW by 2.7% of its largest value)."""
    torch.manual_seed(0)
    layer = FP8Linear(300, 200).to(dtype)
    x = torch.randn(37, 300, dtype=dtype)
    dy = torch.randn(37, 200, dtype=dtype)
    kernel = _fp8_linear_results(layer, x, dy, "cuda")
    with monkeypatch.context() as patch:
        patch.setattr(fp8, "backend_for", lambda *args: "emulated")
        emulated = _fp8_linear_results(layer, x, dy, "cuda")
    references = [emulated] + ([_fp8_linear_results(layer, x, dy, "cpu")] if dtype == torch.float32 else [])
    tolerance = 2e-3 if dtype == torch.float32 else 1.6e-2  # BF16 results: a few ulps (2^-8) of rounding
    for reference in references:
        for name, want, got in zip(("y", "dx", "dW", "db"), reference, kernel):
            error = float((got - want).abs().max() / want.abs().max())
            assert error <= tolerance, f"{name}: {error:.3g} of its largest value"


# -- the learner's pieces --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    """A tokenizer and a seeded decoder whose weights are scaled up: logits of a few units, so greedy
    choices are far from ties (a tie could go either way on either device)."""
    pairs = reference_pairs(ENV, range(16))
    tok = Tokenizer.train_bpe((t for p in pairs for t in p), vocab_size=300)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(20.0)
    return model, tok, [p for p, _ in pairs[:4]]


def _on(model: DecoderLM, device: str) -> DecoderLM:
    copy = DecoderLM(model.config).to(device)
    copy.load_state_dict(model.state_dict())
    return copy


def test_greedy_completions_on_cuda_equal_the_cpus(tiny):
    model, tok, prompts = tiny
    runs = [sample(_on(model, device), tok, prompts, max_new_tokens=20, temperature=0.0)
            for device in ("cpu", "cuda")]
    assert runs[1].batch.input_ids.device.type == "cuda"
    assert runs[0].texts == runs[1].texts
    assert torch.equal(runs[0].batch.input_ids, runs[1].batch.input_ids.cpu())


def test_sampled_logprobs_on_cuda_match_their_recomputation(tiny):
    model, tok, prompts = tiny
    policy = _on(model, "cuda")
    rollout = sample(policy, tok, [p for p in prompts for _ in range(4)], max_new_tokens=20, temperature=0.7,
                     generator=[torch.Generator().manual_seed(g) for g in range(4)])
    with torch.no_grad():
        recomputed, _ = completion_logprobs(policy, rollout.batch, temperature=0.7)
    mask = rollout.batch.completion_mask
    assert rollout.logprobs.device.type == "cuda" and mask.sum() > 20
    # on the CPU: 2.7e-5 between recorded and recomputed, 2.9e-5 between float32 and float64
    assert float(((recomputed - rollout.logprobs) * mask).abs().max()) <= 3e-4


def test_grpo_update_on_cuda_matches_the_cpu(tiny):
    sharp, tok, prompts = tiny
    torch.manual_seed(1)
    model = DecoderLM(sharp.config)  # the plain initialisation: no clipping decision sits near its boundary
    rollout = sample(model, tok, [p for p in prompts for _ in range(4)], max_new_tokens=12, temperature=1.0,
                     generator=torch.Generator().manual_seed(0))
    advantages = grpo.group_advantages(torch.tensor([1.0, 0, 0, 1] * 2 + [0, 1, 1, 1] * 2), 4)
    keep = torch.ones(16, dtype=torch.bool)
    cfg = TrainConfig(mu=2, minibatch_size=8, beta=0.05)
    results = []
    for device in ("cpu", "cuda"):
        policy, reference = _on(model, device), _on(model, device).requires_grad_(False)
        moved = Rollout(rollout.batch.to(torch.device(device)), rollout.logprobs.to(device) - 0.05,
                        rollout.texts, rollout.lengths, rollout.truncated)  # ratios away from 1
        before = [p.detach().clone() for p in policy.parameters()]
        optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)  # a step is the (clipped) gradient, scaled
        stats = grpo_update(cfg, policy, reference, optimizer, moved, advantages, keep,
                            torch.Generator().manual_seed(0))
        steps = [(b - p.detach()).cpu() for b, p in zip(before, policy.parameters())]
        results.append((stats, steps))
    (cpu_stats, cpu_steps), (gpu_stats, gpu_steps) = results
    # on the CPU, float32 against float64: loss, kl and grad_norm within 4e-6 relative, steps 1.1e-5
    for key in ("loss", "kl", "clip_fraction", "grad_norm"):
        assert gpu_stats[key] == pytest.approx(cpu_stats[key], rel=1e-4, abs=1e-7), key
    scale = max(float(s.abs().max()) for s in cpu_steps)
    assert scale > 0 and max(float((g - c).abs().max()) for g, c in zip(gpu_steps, cpu_steps)) <= 1e-4 * scale


# -- whole runs through the CLI ----------------------------------------------------------------------
def _run(command: list[str]) -> subprocess.CompletedProcess:
    """``command`` in a subprocess that imports rewardgym from this checkout; it must succeed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _cli(*args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "rewardgym", *args])


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_eval_runs_on_cuda(tmp_path):
    run, out = tmp_path / "run", tmp_path / "eval.parquet"
    _cli("train", f"run_dir={run}", "device=cpu", "steps=1", *TINY)
    _cli("eval", "--model", str(run / "start"), "--env", ENV, "--n", "4", "--max-new-tokens", "16", "--device", "cuda",
         "--no-progress", "--out", str(out))
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 4


def test_gpu_benchmark_smoke_runs_on_cuda():
    done = _run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "bench.py"), "--smoke", "--device", "cuda"])
    assert "GRPO training step" in done.stdout


@pytest.mark.parametrize("extra, resume", [
    ([], []),
    (["fp8=train"], []),
    (["num_experts=4", "num_experts_per_tok=2", "moe_intermediate_size=32"], []),
    (["compile=true"], ["compile=false"]),  # the CPU resume runs eagerly: a CPU compile costs a minute here
], ids=["dense", "fp8", "moe", "compile"])
def test_a_cuda_run_writes_metrics_and_checkpoints_and_resumes_on_the_cpu(tmp_path, extra, resume):
    run = tmp_path / "run"
    done = _cli("train", f"run_dir={run}", "device=cuda", "steps=2", *TINY, *extra)
    assert "on cuda:" in done.stderr  # build_policy's line names the device
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2] and all(r["completion_tokens"] > 0 for r in rows)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000001", "step-000002"]
    state = torch.load(run / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=True)
    assert all(t.device.type == "cpu" for s in state["optimizer"]["state"].values() for t in s.values())
    assert {"accuracy_start", "accuracy_end"} <= set(json.loads((run / "summary.json").read_text()))
    done = _cli("train", f"run_dir={run}", "device=cpu", "steps=3", *TINY, *extra, *resume)
    assert "resuming from" in done.stderr and "at step 2" in done.stderr
    assert [r["step"] for r in _rows(run)] == [1, 2, 3]
    assert (run / "checkpoints" / "step-000003" / "model.safetensors").is_file()
