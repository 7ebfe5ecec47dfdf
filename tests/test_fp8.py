"""FP8 linear layers: E4M3 quantisation with 1x128 / 128x128 scales, the scaled matmul backends,
the training autograd, rollout-only FP8 with truncated importance sampling, and a tiny FP8 run."""

import json
import math
import runpy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from rewardgym.trainers import grpo  # noqa: E402
from rewardgym.trainers.cli import train_main  # noqa: E402
from rewardgym.trainers.config import TrainConfig  # noqa: E402
from rewardgym.trainers.rollout import Rollout, completion_logprobs, pack  # noqa: E402
from rewardgym.trainers.train import training_old_logprobs  # noqa: E402
from rewardgym.trainers.models import DecoderLM, ModelConfig, fp8, load_pretrained  # noqa: E402
from rewardgym.trainers.models.fp8 import (  # noqa: E402
    FP8Linear, Quantized, backend_for, full_precision, matmul_blockwise, matmul_emulated, quantize_blocks,
    quantize_tiles, scaled_matmul, to_fp8)

pytestmark = pytest.mark.torch


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def _half_ulp(v: torch.Tensor) -> torch.Tensor:
    """Half the E4M3 spacing at |v|: 2^(e-4) for normals (3 mantissa bits), 2^-10 below 2^-6."""
    exponent = torch.floor(torch.log2(v.abs().clamp(min=2.0 ** -6)))
    return torch.exp2(exponent - 4)


# -- quantisation ------------------------------------------------------------------------------
def test_representable_values_round_trip_exactly():
    row = torch.zeros(1, 128)
    row[0, :6] = torch.tensor([448.0, 1.0, -0.5, 3.5, 2.0 ** -9, -240.0])  # amax 448: scale 1
    q = quantize_tiles(row)
    assert q.scale.tolist() == [[1.0]]
    assert torch.equal(q.data.float(), row) and torch.equal(q.dequantize(), row)
    doubled = quantize_tiles(row * 2)  # amax 896: scale exactly 2, the same FP8 values
    assert doubled.scale.tolist() == [[2.0]] and torch.equal(doubled.data, q.data)


def test_rounding_is_to_nearest_even_at_e4m3_spacing():
    row = torch.zeros(1, 128)
    row[0, :4] = torch.tensor([448.0, 1.0625, 1.1875, 300.0])
    # 1.0625 is halfway 1 | 1.125 -> even 1.0; 1.1875 halfway 1.125 | 1.25 -> even 1.25;
    # 300 lies in [256, 512) where the spacing is 32: nearest is 288.
    assert quantize_tiles(row).dequantize()[0, :4].tolist() == [448.0, 1.0, 1.25, 288.0]


def test_each_tile_and_block_has_its_own_scale():
    x = torch.full((2, 256), 0.01)
    x[0, 5] = 100.0  # an outlier in tile (0, 0) only
    q = quantize_tiles(x)
    assert q.scale.flatten().tolist() == pytest.approx([100 / 448, 0.01 / 448, 0.01 / 448, 0.01 / 448], rel=1e-6)
    assert q.dequantize()[0, 128:].tolist() == pytest.approx([0.01] * 128, rel=1e-6)
    w = torch.randn(130, 260)
    b = quantize_blocks(w)
    assert b.data.shape == (256, 384) and b.scale.shape == (2, 3)
    assert float(b.scale[1, 2]) == pytest.approx(float(w[128:, 256:].abs().max()) / 448, rel=1e-6)
    assert float(b.scale[0, 0]) == pytest.approx(float(w[:128, :128].abs().max()) / 448, rel=1e-6)


def test_non_multiple_shapes_are_zero_padded_and_cropped():
    x = torch.randn(3, 200)
    q = quantize_tiles(x)
    assert q.data.shape == (3, 256) and q.scale.shape == (3, 2) and q.shape == (3, 200)
    assert torch.all(q.data[:, 200:].float() == 0)
    assert q.dequantize().shape == (3, 200)
    assert quantize_blocks(torch.randn(5, 7)).dequantize().shape == (5, 7)


def test_zero_tiles_and_blocks_give_zeros_not_nan():
    for q in (quantize_tiles(torch.zeros(2, 130)), quantize_blocks(torch.zeros(3, 130))):
        assert torch.all(q.scale == 1.0)
        assert torch.equal(q.dequantize(), torch.zeros(q.shape))
    mixed = torch.zeros(1, 256)
    mixed[0, 200] = 3.0
    assert torch.equal(quantize_tiles(mixed).dequantize(), mixed)


@pytest.mark.parametrize("quantize", [quantize_tiles, quantize_blocks])
def test_round_trip_error_is_within_half_an_e4m3_ulp(quantize):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(150, 300, generator=generator) * 10 ** (torch.rand(150, 300, generator=generator) * 6 - 3)
    q = quantize(x)
    scales = q.row_scales().repeat_interleave(128, dim=1)[:150, :300]
    bound = scales * _half_ulp(x / scales) * (1 + 1e-5)
    assert torch.all((x - q.dequantize()).abs() <= bound)
    assert torch.all(q.data.float().abs() <= 448)


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match="2-D"):
        quantize_tiles(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="reduction dims differ"):
        matmul_emulated(quantize_tiles(torch.zeros(2, 4)), quantize_blocks(torch.zeros(3, 5)))
    with pytest.raises(ValueError, match="unknown backend"):
        scaled_matmul(quantize_tiles(torch.zeros(2, 4)), quantize_blocks(torch.zeros(3, 4)), backend="magic")


# -- matmul --------------------------------------------------------------------------------------
def _cpu_rowwise_kernel() -> bool:
    """Whether this torch runs row-scaled FP8 GEMMs on the CPU (2.13 does; 2.11 has them on CUDA only)."""
    one = torch.ones(16, 16).to(fp8.E4M3)
    try:
        F.scaled_mm(one, one.t(), torch.ones(16, 1), F.ScalingType.RowWise, torch.ones(1, 16), F.ScalingType.RowWise,
                    output_dtype=torch.float32)
    except (AttributeError, NotImplementedError, RuntimeError):
        return False
    return True


CPU_BACKENDS = ("emulated", "rowwise") if _cpu_rowwise_kernel() else ("emulated",)


def test_emulated_and_rowwise_kernels_equal_dequantise_then_matmul():
    generator = torch.Generator().manual_seed(1)
    a = quantize_tiles(torch.randn(37, 300, generator=generator))
    for b in (quantize_blocks(torch.randn(200, 300, generator=generator) * 0.05),
              quantize_tiles(torch.randn(90, 300, generator=generator))):
        want = a.dequantize() @ b.dequantize().t()
        scale = float(want.abs().max())
        for backend in CPU_BACKENDS:  # rowwise: torch's real row-scaled FP8 GEMM, on CPU where torch has it
            got = scaled_matmul(a, b, backend=backend)
            assert got.shape == want.shape and got.dtype == torch.float32
            assert float((got - want).abs().max()) <= 1e-5 * scale
    assert backend_for(torch.device("cpu"), torch.float32) == "emulated"


def test_kernel_probe_accepts_a_correct_kernel_and_refuses_a_wrong_one(monkeypatch):
    cpu = torch.device("cpu")
    for backend in CPU_BACKENDS:
        assert fp8._probe(backend, cpu, torch.float32, 128) and fp8._probe(backend, cpu, torch.bfloat16, 1)
    with pytest.warns(UserWarning, match="blockwise kernel unavailable"):  # no DeepSeek recipe on CPU
        assert not fp8._probe("blockwise", cpu, torch.float32, 128)
    real = fp8._run

    def misplaced_scale(backend, a, b, out_dtype):
        out = real(backend, a, b, out_dtype)
        out[3] *= 2
        return out

    monkeypatch.setattr(fp8, "_run", misplaced_scale)
    with pytest.raises(RuntimeError, match="disagrees with the emulation"):
        fp8._probe(CPU_BACKENDS[-1], cpu, torch.float32, 1)


def test_probe_falls_back_when_this_torch_lacks_the_scaled_mm_api(monkeypatch):
    monkeypatch.delattr(F, "ScalingType")  # as in a torch older than the v2 scaled_mm API
    with pytest.warns(UserWarning, match="rowwise kernel unavailable .*ScalingType"):
        assert not fp8._probe("rowwise", torch.device("cpu"), torch.float32, 128)


def _meta(q: Quantized) -> Quantized:
    return Quantized(q.data.to("meta"), q.scale.to("meta"), q.shape, q.block_rows)


def test_hopper_kernel_call_passes_torchs_layout_checks():
    """On the meta device torch runs scaled_mm's CUDA shape and stride checks without a GPU."""
    x, w, dy = torch.randn(37, 300), torch.randn(200, 300), torch.randn(37, 200)
    qw = quantize_blocks(w)
    cases = [(quantize_tiles(x), qw, (37, 200)), (quantize_tiles(dy), qw.t(), (37, 300)),
             (quantize_tiles(dy.t()), quantize_tiles(x.t()), (200, 300))]
    for a, b, shape in cases:
        for dtype in (torch.bfloat16, torch.float32):
            out = matmul_blockwise(_meta(a), _meta(b), dtype)
            assert out.shape == shape and out.dtype == dtype
    a = _meta(quantize_tiles(x))  # the checks do bite: row-major scales are refused
    with pytest.raises(RuntimeError, match="blockwise scaling"):
        F.scaled_mm(a.data[:32], _meta(qw).data.t(), a.scale[:32], F.ScalingType.BlockWise1x128,
                    _meta(qw).scale.t(), F.ScalingType.BlockWise128x128, output_dtype=torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_layer_output_is_close_to_full_precision(dtype):
    torch.manual_seed(2)
    layer = FP8Linear(300, 200).to(dtype)
    x = torch.randn(64, 300, dtype=dtype)
    reference = F.linear(x.float(), layer.weight.float(), layer.bias.float())
    y = layer(x)
    assert y.dtype == dtype
    assert 0.01 < _rel(y, reference) < 0.06  # E4M3 keeps 3 mantissa bits: a few percent, not BF16's 0.4%
    with full_precision(layer):
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert layer.fp8


# -- autograd -----------------------------------------------------------------------------------
def test_backward_runs_the_documented_fp8_gemms_and_stays_close_to_full_precision():
    torch.manual_seed(3)
    layer = FP8Linear(300, 200)
    x = torch.randn(2, 20, 300, requires_grad=True)
    dy = torch.randn(2, 20, 200)
    layer(x).backward(dy)
    x2, dy2 = x.detach().reshape(40, 300), dy.reshape(40, 200)
    w = layer.weight.detach()
    dx_fp8 = quantize_tiles(dy2).dequantize() @ quantize_blocks(w).dequantize()
    dw_fp8 = quantize_tiles(dy2.t()).dequantize() @ quantize_tiles(x2.t()).dequantize().t()
    assert float((x.grad.reshape(40, 300) - dx_fp8).abs().max()) <= 1e-5 * float(dx_fp8.abs().max())
    assert float((layer.weight.grad - dw_fp8).abs().max()) <= 1e-5 * float(dw_fp8.abs().max())
    assert torch.allclose(layer.bias.grad, dy2.sum(0), atol=1e-5)
    assert _rel(x.grad.reshape(40, 300), dy2 @ w) < 0.08
    assert _rel(layer.weight.grad, dy2.t() @ x2) < 0.08


def test_weight_quantisation_is_cached_until_the_weight_changes():
    torch.manual_seed(4)
    layer = FP8Linear(64, 32, bias=False)
    first = layer.quantized_weight()
    assert layer.quantized_weight() is first
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.randn(8, 64)).sum().backward()
    optimizer.step()
    assert layer.quantized_weight() is not first
    fresh = FP8Linear(64, 32, bias=False)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(4, 64)
    assert torch.equal(layer(x), fresh(x))
    with torch.no_grad():
        layer.weight.mul_(2)
    assert torch.allclose(layer(x), 2 * fresh(x), rtol=1e-6, atol=1e-6)


def test_to_fp8_swaps_the_projections_but_not_the_head():
    torch.manual_seed(5)
    model = DecoderLM(ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1))
    model8 = to_fp8(model)
    assert to_fp8(model8) is model8 and model8.config.fp8 and not model.config.fp8
    kinds = {name: type(m) for name, m in model8.named_modules() if isinstance(m, torch.nn.Linear)}
    assert kinds.pop("lm_head") is torch.nn.Linear and set(kinds.values()) == {FP8Linear} and len(kinds) == 7
    state, state8 = model.state_dict(), model8.state_dict()
    assert state.keys() == state8.keys() and all(torch.equal(state[k], state8[k]) for k in state)
    ids = torch.randint(0, 64, (2, 9))
    assert _rel(model8(ids), model(ids)) < 0.1
    with full_precision(model8):
        assert torch.allclose(model8(ids), model(ids), atol=1e-6)
    assert "fp8" not in model8.config.to_hf()


# -- truncated importance sampling ---------------------------------------------------------------
def test_tis_weights_by_hand():
    train = torch.tensor([[math.log(0.5), math.log(0.9), math.log(0.2)]])
    rollout = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.4)]])
    # ratios 1, 3 (capped at 2), 0.5
    assert grpo.tis_weights(train, rollout, cap=2.0)[0].tolist() == pytest.approx([1.0, 2.0, 0.5])
    with pytest.raises(ValueError, match="cap"):
        grpo.tis_weights(train, rollout, cap=0.0)


def test_policy_loss_scales_each_token_by_its_tis_weight():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.4, 0.4]])).requires_grad_()
    old = torch.log(torch.tensor([[0.5, 0.25], [0.4, 0.4]]))
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    weight = torch.tensor([[2.0, 0.5], [1.5, 7.0]])
    loss, _ = grpo.policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.2, tis_weight=weight)
    # token losses: -min(1*1, 1*1)*2 = -2; ratio 2 clipped to 1.2: -1.2*0.5 = -0.6; -(1*-2)*1.5 = 3
    assert loss.item() == pytest.approx((-2.0 - 0.6 + 3.0) / 3)
    plain, _ = grpo.policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.2)
    assert plain.item() == pytest.approx((-1.0 - 1.2 + 2.0) / 3)


def test_rollout_mode_recomputes_old_logprobs_in_full_precision_and_weights_tokens():
    torch.manual_seed(6)
    model8 = to_fp8(DecoderLM(ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1)))
    batch = pack([[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14]], pad_id=0)
    with torch.no_grad():
        sampled, _ = completion_logprobs(model8, batch)  # what an FP8 sampler records
        with full_precision(model8):
            full, _ = completion_logprobs(model8, batch)
    sampled = sampled * batch.completion_mask  # the sampler records 0 past a completion's end
    rollout = Rollout(batch, sampled, texts=["", ""], lengths=[4, 1], truncated=[False, False])
    old, weights, stats = training_old_logprobs(TrainConfig(fp8="rollout", tis_cap=1.01), model8, rollout)
    assert torch.equal(old, full)
    assert torch.allclose(weights, (full - sampled).exp().clamp(max=1.01))
    real = batch.completion_mask.bool()
    assert stats["rollout_logp_gap_max"] == pytest.approx(float((full - sampled)[real].abs().max()))
    assert 0 < stats["rollout_logp_gap_mean"] <= stats["rollout_logp_gap_max"]
    assert training_old_logprobs(TrainConfig(fp8="rollout", tis_cap=0), model8, rollout)[1] is None
    assert training_old_logprobs(TrainConfig(fp8="train"), model8, rollout) == (sampled, None, {})


def test_fp8_modes_are_validated():
    with pytest.raises(ValueError, match="fp8 'half' not one of"):
        TrainConfig(fp8="half")
    with pytest.raises(ValueError, match="tis_cap"):
        TrainConfig(tis_cap=-1.0)


# -- a tiny run ----------------------------------------------------------------------------------
TINY = ["vocab_size=300", "hidden_size=32", "intermediate_size=64", "num_layers=1", "num_heads=2", "num_kv_heads=1",
        "sft_examples=32", "sft_steps=10", "sft_batch_size=8", "sft_lr=0.01", "tasks_per_step=2", "group_size=4",
        "max_new_tokens=24", "eval_tasks=2", "checkpoint_every=2", "plot=false", "lr=0.01", "temperature=1.5",
        "overlong_buffer=20", "steps=2", "progress=false"]


@pytest.mark.parametrize("mode", ["rollout", "train"])
def test_tiny_fp8_run_trains_and_saves_a_plain_model(tmp_path, mode):
    run = tmp_path / mode
    assert train_main([f"run_dir={run}", f"fp8={mode}", *TINY]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and any(r["optimizer_steps"] > 0 for r in rows)
    trained = [r for r in rows if r["optimizer_steps"] > 0]
    if mode == "rollout":  # the sampler's FP8 log-probs differ from training's full-precision ones
        assert all(r["rollout_logp_gap_max"] > 0 and 0 < r["tis_weight_mean"] <= 2.0 for r in trained)
    else:
        assert not any("tis_weight_mean" in r for r in rows)
    assert "fp8" not in json.loads((run / "checkpoints" / "step-000002" / "config.json").read_text())
    model, _ = load_pretrained(run / "checkpoints" / "step-000002")
    start, _ = load_pretrained(run / "start")
    assert not model.config.fp8
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))


def test_gpu_benchmark_runs_in_smoke_mode(capsys):
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "bench.py"))
    assert bench["main"](["--smoke"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 3 and "GRPO training step" in table[-1]


def test_resumed_fp8_run_ends_with_the_same_weights(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train_main([f"run_dir={full}", "fp8=rollout", *TINY]) == 0
    assert train_main([f"run_dir={cut}", "fp8=rollout", *TINY, "steps=1"]) == 0
    assert train_main([f"run_dir={cut}", "fp8=rollout", *TINY]) == 0
    a, _ = load_pretrained(full / "checkpoints" / "step-000002")
    b, _ = load_pretrained(cut / "checkpoints" / "step-000002")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_quantised_operands_are_row_major_whatever_the_input_layout():
    """A transposed input (the weight-gradient GEMM quantises dy^T and x^T) must still give row-major
    FP8 data: cuBLASLt refuses other layouts, and only a padded input used to come out row-major."""
    x = torch.randn(256, 384)
    for quantize in (quantize_tiles, quantize_blocks):
        q = quantize(x.t())
        assert q.data.is_contiguous() and q.scale.is_contiguous()
        assert torch.equal(q.dequantize(), quantize(x.t().contiguous()).dequantize())
