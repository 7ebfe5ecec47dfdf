"""FP8 vs BF16 on one GPU: matmul TFLOP/s, and the GRPO learner's training step on a decoder of a
few hundred million parameters (seconds per step, completion tokens per second).

    python benchmarks/gpu/bench.py                 # a Hopper GPU: prints a markdown table
    python benchmarks/gpu/bench.py --smoke         # tiny sizes on CPU: checks the script runs

Both precisions run in the same process on the same device, alternating, each keeping its best
of ``--rounds`` rounds; the table gives FP8's speed-up over BF16 measured in this run. The matmul
rows compare ``torch.mm`` in BF16 with ``rewardgym``'s ``scaled_matmul`` (1x128 activation tiles,
128x128 weight blocks, FP32 accumulation, BF16 output), once on pre-quantised operands (the GEMM
alone) and once quantising the activations inside the timed call (what a forward pass pays).
The training rows run ``rewardgym.trainers.train.grpo_update`` (forward, GRPO loss, backward,
AdamW) on a synthetic rollout batch with BF16 master weights: ``fp8: none`` against
``fp8: train`` (all three GEMMs of every projection in FP8; embeddings, head, norms and attention
stay in BF16).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch

from rewardgym.trainers.config import TrainConfig
from rewardgym.trainers.models import DecoderLM, ModelConfig
from rewardgym.trainers.models.fp8 import backend_for, quantize_blocks, quantize_tiles, scaled_matmul, to_fp8
from rewardgym.trainers.rollout import Batch, Rollout, pack
from rewardgym.trainers.train import grpo_update

FULL = {
    "shapes": [(4096, 4096, 4096), (8192, 8192, 8192), (16384, 2816, 1024), (16384, 1024, 2816)],
    "model": dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=24,
                  num_attention_heads=16, num_key_value_heads=8),
    "batch": (16, 256, 768),  # rollouts, prompt tokens, completion tokens
}
SMOKE = {
    "shapes": [(64, 256, 128)],
    "model": dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1),
    "batch": (2, 8, 8),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def best_of(rounds: int, contenders: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run the contenders in turn for ``rounds`` rounds; each keeps its fastest time."""
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            best[name] = min(best[name], run())
    return best


def matmul_rows(shapes: list[tuple[int, int, int]], device: torch.device, args: argparse.Namespace) -> list[str]:
    rows = []
    for m, n, k in shapes:
        x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16) * k ** -0.5
        qx, qw = quantize_tiles(x), quantize_blocks(w)
        flops = 2 * m * n * k

        def timer(fn: Callable[[], object]) -> Callable[[], float]:
            return lambda: seconds_per_call(fn, device, args.warmup, args.iters)

        best = best_of(args.rounds, {
            "bf16": timer(lambda: x @ w.t()),
            "fp8": timer(lambda: scaled_matmul(qx, qw, torch.bfloat16)),
            "fp8+quant": timer(lambda: scaled_matmul(quantize_tiles(x), qw, torch.bfloat16)),
        })
        tflops = {name: flops / s / 1e12 for name, s in best.items()}
        rows.append(f"| matmul {m}x{k} @ {k}x{n} | {tflops['bf16']:.3g} TFLOP/s | {tflops['fp8']:.3g} TFLOP/s "
                    f"({tflops['fp8+quant']:.3g} with activation quantisation) | "
                    f"{tflops['fp8'] / tflops['bf16']:.2f}x ({tflops['fp8+quant'] / tflops['bf16']:.2f}x) |")
    return rows


def synthetic_rollout(batch: tuple[int, int, int], vocab: int, device: torch.device) -> Rollout:
    rollouts, prompt, completion = batch
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(2, vocab, (rollouts, prompt), generator=generator).tolist()
    completions = torch.randint(2, vocab, (rollouts, completion), generator=generator).tolist()
    packed = pack(prompts, completions, pad_id=0)
    packed = Batch(packed.input_ids.to(device), packed.attention_mask.to(device), packed.completion_mask.to(device),
                   packed.prompt_width)
    logprobs = torch.full((rollouts, completion), -2.0, device=device)  # as if sampled; ratios need not be 1
    return Rollout(packed, logprobs, texts=[""] * rollouts, lengths=[completion] * rollouts,
                   truncated=[True] * rollouts)


def training_rows(spec: dict, device: torch.device, args: argparse.Namespace) -> list[str]:
    rollouts, prompt, completion = spec["batch"]
    rollout = synthetic_rollout(spec["batch"], spec["model"]["vocab_size"], device)
    advantages = torch.linspace(-1, 1, rollouts, device=device)
    keep = torch.ones(rollouts, dtype=torch.bool)
    torch.manual_seed(0)
    base = DecoderLM(ModelConfig(**spec["model"], max_position_embeddings=prompt + completion))
    base = base.to(device=device, dtype=torch.bfloat16)
    contenders, params = {}, base.num_parameters()
    for mode, policy in (("none", base), ("train", to_fp8(base))):
        cfg = TrainConfig(fp8=mode, lr=1e-6, max_new_tokens=completion, minibatch_size=args.minibatch)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)

        def step(cfg=cfg, policy=policy, optimizer=optimizer) -> None:
            grpo_update(cfg, policy, None, optimizer, rollout, advantages, keep, torch.Generator().manual_seed(0))

        contenders[mode] = lambda step=step: seconds_per_call(step, device, args.warmup, args.train_iters)
    best = best_of(args.rounds, contenders)
    tokens = rollouts * completion
    bf16, fp8 = best["none"], best["train"]
    return [f"| GRPO training step, {params:,}-parameter decoder, {rollouts} x ({prompt} + {completion}) "
            f"tokens, minibatches of {args.minibatch or rollouts} | {bf16:.3f} s ({tokens / bf16:,.0f} completion "
            f"tokens/s) | {fp8:.3f} s ({tokens / fp8:,.0f} completion tokens/s) | {bf16 / fp8:.2f}x |"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, to check the script runs")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20, help="timed calls per matmul round")
    parser.add_argument("--train-iters", type=int, default=3, help="timed training steps per round")
    parser.add_argument("--minibatch", type=int, default=4, help="rollouts per optimizer step")
    args = parser.parse_args(argv)
    spec = SMOKE if args.smoke else FULL
    if args.smoke:
        args.rounds, args.warmup, args.iters, args.train_iters, args.minibatch = 1, 0, 1, 1, 0
    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or pass --smoke for a CPU check", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; FP8 backend: {backend_for(device, torch.bfloat16)}; "
          f"best of {args.rounds} rounds\n")
    print("| benchmark | BF16 | FP8 | FP8 speed-up |")
    print("|---|---|---|---|")
    for row in matmul_rows(spec["shapes"], device, args) + training_rows(spec, device, args):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
