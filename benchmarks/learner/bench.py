"""rewardgym's GRPO learner vs TRL's GRPOTrainer: seconds per step, completion tokens/s, peak memory.

Both contenders start from the same weights (a tiny Llama-layout decoder written by our
``save_pretrained``, opened by ``transformers`` for TRL), the same byte-level BPE tokenizer, the
same countdown prompts (plain R1-template text), group size, completion length and reward
(rewardgym's countdown verifier: through the vector env for ours, through
``rewardgym.integrations.trl.reward_func`` for TRL). Each contender runs in a fresh child process
with one torch thread, so its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own.
Ours runs as the learner trains (a row also stops at ``</answer>``), and as ``rewardgym-eos`` with
TRL's stopping rule (EOS only), so that both write the same number of tokens per step; the
``-compiled`` rows are the same two with ``compile=true`` (a ``torch.compile``'d decode step; TRL
runs eagerly). The warm-up steps absorb compilation; the slowest round's warm-up seconds (the first
round compiles cold, later ones may reuse inductor's on-disk cache) are reported apart.

    python benchmarks/learner/bench.py [--steps 10] [--warmup 2] [--rounds 3]

The contenders alternate for ``--rounds`` rounds and each keeps its fastest round, so a burst of
load from other jobs on a shared machine does not decide the ratio; peak RSS and warm-up are the largest seen.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ENV = "rewardgym/Countdown-v0"
TASKS_PER_STEP = 2
GROUP = 8
COMPLETION_TOKENS = 32
LR = 1e-4


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_model(directory: Path) -> int:
    """The tiny default policy (random weights, seed 0) and its tokenizer, saved in HF layout."""
    from rewardgym.trainers.config import SFTConfig
    from rewardgym.trainers.models import save_pretrained
    from rewardgym.trainers.train import build_policy

    policy, tokenizer = build_policy(SFTConfig(env=ENV, examples=500, steps=0), log=lambda _: None)
    save_pretrained(policy, tokenizer, directory)
    return policy.num_parameters()


def run_ours(model_dir: str, steps: int, warmup: int, eos_only: bool = False, compile: bool = False) -> dict:
    import torch

    import rewardgym
    from rewardgym.trainers import train
    from rewardgym.trainers.config import TrainConfig
    from rewardgym.trainers.models import load_pretrained
    from rewardgym.trainers.train import grpo_step

    torch.set_num_threads(1)
    if eos_only:  # TRL's stopping rule, so both write the same tokens per step (the same work)
        train.STOP = ()
    # An untrained policy scores 0 everywhere; keep every group so each step trains, as TRL does.
    cfg = TrainConfig(env=ENV, model=model_dir, tasks_per_step=TASKS_PER_STEP, group_size=GROUP,
                      max_new_tokens=COMPLETION_TOKENS, lr=LR, filter_zero_variance=False, compile=compile)
    policy, tokenizer = load_pretrained(model_dir)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    envs = rewardgym.make_vec(ENV, num_envs=TASKS_PER_STEP * GROUP, group_size=GROUP)
    rss_before = rss_mib()
    seconds, tokens = [], []
    try:
        for step in range(warmup + steps):
            started = time.perf_counter()
            row = grpo_step(cfg, step, envs, policy, tokenizer, None, optimizer)
            seconds.append(time.perf_counter() - started)
            tokens.append(row["completion_tokens"])
    finally:
        envs.close()
    return {"seconds": seconds[warmup:], "tokens": tokens[warmup:], "rss_before_mib": rss_before,
            "warmup_seconds": sum(seconds[:warmup])}


def run_trl(model_dir: str, steps: int, warmup: int) -> dict:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rewardgym.integrations.trl import reward_func, to_dataset
    from rewardgym.trainers.models.tokenizer import EOS, PAD

    torch.set_num_threads(1)
    model = LlamaForCausalLM.from_pretrained(model_dir)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(model_dir) / "tokenizer.json"),
                                        eos_token=EOS, pad_token=PAD, padding_side="left")
    dataset = to_dataset(ENV, TASKS_PER_STEP * (warmup + steps), chat=False)
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, max_steps=warmup + steps, per_device_train_batch_size=TASKS_PER_STEP * GROUP,
                          num_generations=GROUP, max_completion_length=COMPLETION_TOKENS, learning_rate=LR,
                          beta=0.0, temperature=1.0, logging_steps=1, report_to="none", use_cpu=True,
                          save_strategy="no", seed=0, disable_tqdm=True)
        trainer = GRPOTrainer(model=model, reward_funcs=[reward_func(ENV)], args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[Clock()])
        rss_before = rss_mib()
        trainer.train()
    seconds = [end - begin for begin, end in zip(marks[::2], marks[1::2])]
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history if "completions/mean_length" in row]
    tokens = [length * TASKS_PER_STEP * GROUP for length in lengths]
    return {"seconds": seconds[warmup:], "tokens": tokens[warmup:], "rss_before_mib": rss_before,
            "warmup_seconds": sum(seconds[:warmup])}


CONTENDERS = {"rewardgym": run_ours, "rewardgym-eos": partial(run_ours, eos_only=True),
              "rewardgym-compiled": partial(run_ours, compile=True),
              "rewardgym-eos-compiled": partial(run_ours, eos_only=True, compile=True), "trl": run_trl}


def child(name: str, model_dir: str, steps: int, warmup: int) -> None:
    result = CONTENDERS[name](model_dir, steps, warmup)
    result["peak_rss_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result))


def summarise(result: dict) -> dict:
    seconds, tokens = sum(result["seconds"]), sum(result["tokens"])
    return {"s_per_step": seconds / len(result["seconds"]), "tokens_per_s": tokens / seconds,
            "tokens_per_step": tokens / len(result["tokens"]), "peak": result["peak_rss_mib"],
            "before": result["rss_before_mib"], "warmup": result["warmup_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per contender; the fastest counts")
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.steps, args.warmup)
        return

    import torch
    import trl

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        parameters = make_model(model_dir)
        print(f"torch {torch.__version__}, trl {trl.__version__}; {ENV}; {parameters:,} parameters; "
              f"{TASKS_PER_STEP} prompts x {GROUP} completions of up to {COMPLETION_TOKENS} tokens per step; "
              f"{args.warmup} warm-up + {args.steps} timed steps; 1 torch thread each; best of {args.rounds} rounds")
        rows: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name in CONTENDERS:
                done = subprocess.run([sys.executable, __file__, "--child", name, "--model", str(model_dir),
                                       "--steps", str(args.steps), "--warmup", str(args.warmup)],
                                      capture_output=True, text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode or not lines:
                    sys.exit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
                row = summarise(json.loads(lines[-1][len("RESULT "):]))
                print(f"  {name:22} {row['s_per_step']:.3f} s/step", flush=True)
                best = rows.get(name)
                worst = {key: max(row[key], best[key] if best else 0.0) for key in ("peak", "warmup")}
                rows[name] = {**(row if best is None or row["s_per_step"] < best["s_per_step"] else best), **worst}
    print(f"\n{'':22} {'s/step':>8} {'tokens/step':>12} {'tokens/s':>10} "
          f"{'RSS before (MiB)':>17} {'peak RSS (MiB)':>15} {'warm-up (s)':>12}")
    for name, r in rows.items():
        print(f"{name:22} {r['s_per_step']:8.3f} {r['tokens_per_step']:12.1f} {r['tokens_per_s']:10.0f} "
              f"{r['before']:17.0f} {r['peak']:15.0f} {r['warmup']:12.2f}")
    peer = rows["trl"]
    print()
    for name in ("rewardgym", "rewardgym-eos", "rewardgym-compiled", "rewardgym-eos-compiled"):
        ours = rows[name]
        print(f"{name} / trl: tokens/s {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x, "
              f"s/step {peer['s_per_step'] / ours['s_per_step']:.2f}x faster, "
              f"peak RSS {ours['peak'] / peer['peak']:.2f}x")


if __name__ == "__main__":
    main()
