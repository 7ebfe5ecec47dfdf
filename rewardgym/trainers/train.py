"""The GRPO training loop, from rollout to optimizer step, in one file.

    policy (built + SFT cold start, or loaded)           -> run_dir/start/
    for each step:
      vector env.reset(seed = one seed per group, repeated G times)  -> prompts
      sample G completions per prompt, log-probs recorded            -> Rollout
      vector env.step(completions)                                   -> rewards, verdicts
      (+ closeness shaping, overlong shaping) -> group advantages -> drop zero-variance groups
      mu passes of minibatch optimizer steps on the clipped loss (+ beta * KL)
      metrics -> run_dir/metrics.jsonl (+ TensorBoard, progress bar); every N steps an atomic checkpoint
    held-out greedy accuracy before and after; run_dir/curves.png

Environments are reached only through ``rewardgym.make_vec`` and the Gymnasium vector API.
Task seeds come from the step number (the data cursor) and each group samples from a generator
seeded by (seed, step, group index), so a CPU run resumed from any checkpoint ends with the same
weights, and a ``torchrun`` job (trainers/distributed.py) produces the same global batch on any
number of ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rewardgym

from ..curriculum import Curriculum
from ..shaping import Closeness, VectorRewardShaping
from . import grpo
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_states, write_atomic
from .config import SFTConfig, TrainConfig, to_dict
from .device import DTYPES, resolve_device
from .distributed import SINGLE, DataParallel, check_world, group_generators, launch, shutdown
from .expert_sharding import gather_full, shard_policy
from .models import DecoderLM, ModelConfig, Tokenizer, load_pretrained, save_pretrained
from .models.expert_parallel import lockstep, sit_out, token_free_pass
from .models.fp8 import full_precision, to_fp8
from .models.moe import aux_loss, balance_experts, mean_stats, split_parameters
from .models.tokenizer import fixed_phrases
from .reporting import Progress, add_scalars, close_writer, tensorboard_writer
from .rollout import Rollout, completion_logprobs, sample
from .sft import load_pairs, reference_pairs, run_sft

# Disjoint seed ranges: GRPO training tasks count up from 0; SFT and evaluation use their own.
SFT_SEEDS = 10_000_000
EVAL_SEEDS = 20_000_000
STOP = ("</answer>",)
Log = Callable[[str], None]


@dataclass
class Scored:
    rollout: Rollout
    rewards: np.ndarray
    correct: np.ndarray
    components: dict[str, np.ndarray]
    seconds_generate: float
    seconds_verify: float


def rollout_and_score(envs: Any, seeds: list[int], policy: DecoderLM, tokenizer: Tokenizer, *,
                      max_new_tokens: int, temperature: float, top_p: float = 1.0,
                      generator: torch.Generator | list[torch.Generator] | None = None,
                      compile: bool = False) -> Scored:
    """Reset every sub-env with its seed, sample one completion per prompt, step to score them."""
    prompts, _ = envs.reset(seed=seeds)
    start = time.perf_counter()
    with lockstep(policy):  # expert parallelism: ranks that stop decoding early keep serving their experts
        rollout = sample(policy, tokenizer, list(prompts), max_new_tokens=max_new_tokens, temperature=temperature,
                         top_p=top_p, stop=STOP, generator=generator, compile=compile)
    middle = time.perf_counter()
    _, rewards, _, _, info = envs.step(rollout.texts)
    end = time.perf_counter()
    correct = np.array([bool(v.correct) for v in info["verdict"]])
    components = {k: np.asarray(v, dtype=float) for k, v in info.get("reward_components", {}).items()
                  if not k.startswith("_")}
    return Scored(rollout, np.asarray(rewards, dtype=float), correct, components, middle - start, end - middle)


def evaluate(policy: DecoderLM, tokenizer: Tokenizer, env_id: str, n: int, max_new_tokens: int, *,
             remote: str | None = None, dp: DataParallel = SINGLE) -> float:
    """Greedy accuracy on ``n`` held-out tasks (seeds EVAL_SEEDS...), each rank taking its share."""
    mine = dp.shard(n)
    correct = 0
    if len(mine):
        envs = rewardgym.make_vec(env_id, num_envs=len(mine), remote=remote)
        try:
            scored = rollout_and_score(envs, [EVAL_SEEDS + i for i in mine], policy, tokenizer,
                                       max_new_tokens=max_new_tokens, temperature=0.0)
        finally:
            envs.close()
        correct = int(scored.correct.sum())
    else:
        sit_out(policy)
    return float(dp.sum(torch.tensor(correct, dtype=torch.float64))) / n


def build_policy(cfg: SFTConfig, log: Log, writer: Any | None = None, *,
                 device: torch.device | None = None) -> tuple[DecoderLM, Tokenizer]:
    """Load ``cfg.model``, or build a tokenizer and tiny decoder from the SFT texts (on the CPU, so
    a seed gives the same start on every device); move it to ``device`` (default: ``cfg.device``
    in one process) in ``cfg.dtype``; then SFT (its loss also to the TensorBoard ``writer`` when given)."""
    pairs = None
    if cfg.steps > 0 or cfg.model is None:
        seeds = range(SFT_SEEDS, SFT_SEEDS + cfg.examples)
        pairs = load_pairs(cfg.data) if cfg.data else reference_pairs(cfg.env, seeds)
    if cfg.model is not None:
        policy, tokenizer = load_pretrained(cfg.model)
        if tokenizer is None:
            raise FileNotFoundError(f"{cfg.model}: no tokenizer.json beside the model")
    else:
        tokenizer = Tokenizer.train_bpe((text for pair in pairs for text in pair), vocab_size=cfg.vocab_size,
                                        phrases=fixed_phrases([prompt for prompt, _ in pairs]))
        torch.manual_seed(cfg.seed)
        policy = DecoderLM(ModelConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **cfg.moe_options()))
    device = device or resolve_device(cfg.device)
    policy = policy.to(device=device, dtype=DTYPES[cfg.dtype])
    log(f"policy: {policy.num_parameters():,} parameters, vocabulary {tokenizer.vocab_size}, {cfg.dtype} on {device}")
    if cfg.steps > 0:
        every = max(1, cfg.steps // 10)
        progress = Progress(cfg.steps, desc="sft", log=log, enabled=cfg.progress)

        def report(step: int, loss: float) -> None:
            progress.step(f"sft step {step + 1}/{cfg.steps} loss {loss:.4f}", {"loss": loss},
                          show_line=(step + 1) % every == 0)
            add_scalars(writer, "sft", {"loss": loss}, step + 1)

        try:
            run_sft(policy, tokenizer, pairs, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                    log=report)
        finally:
            progress.close()
    return policy, tokenizer


def training_old_logprobs(cfg: TrainConfig, policy: DecoderLM, rollout: Rollout,
                          dp: DataParallel = SINGLE) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """The log-probs the importance ratio divides by, per-token TIS weights, and gap statistics
    (reduced over ranks).

    With ``fp8: rollout`` the sampler ran in FP8 while training runs in full precision, so the
    recorded log-probs are not the trainer's: recompute them and weight each token by
    min(pi_train / pi_sampler, tis_cap). Otherwise the recorded log-probs serve as they are.
    """
    if cfg.fp8 != "rollout":
        return rollout.logprobs, None, {}
    with torch.no_grad(), full_precision(policy):
        train_logp, _ = completion_logprobs(policy, rollout.batch, temperature=cfg.temperature,
                                            routing=rollout.routing if cfg.routing_replay else None)
    real = rollout.batch.completion_mask.bool()
    gap = (train_logp - rollout.logprobs)[real].abs()
    weights = grpo.tis_weights(train_logp, rollout.logprobs, cfg.tis_cap) if cfg.tis_cap else None
    total, count, weight_total = dp.sum(torch.tensor(
        [float(gap.sum()), gap.numel(), float(weights[real].sum()) if weights is not None else 0.0],
        dtype=torch.float64)).tolist()
    largest = dp.max(gap.max() if gap.numel() else torch.tensor(0.0))
    stats = {"rollout_logp_gap_mean": total / max(count, 1), "rollout_logp_gap_max": float(largest)}
    if weights is not None:
        stats["tis_weight_mean"] = weight_total / max(count, 1)
    return train_logp, weights, stats


def grpo_update(cfg: TrainConfig, policy: DecoderLM, reference: DecoderLM | None, optimizer: torch.optim.Optimizer,
                rollout: Rollout, advantages: torch.Tensor, keep: torch.Tensor, generator: torch.Generator, *,
                owned: range | None = None, dp: DataParallel = SINGLE) -> dict[str, float]:
    """mu passes of minibatch optimizer steps over the kept rollouts; returns averaged statistics
    (with the expert load of a Mixture-of-Experts policy, whose routing is replayed when
    ``cfg.routing_replay``).

    ``advantages`` and ``keep`` cover the global batch, of which this rank's ``rollout`` holds the
    rows ``owned`` (all of them in one process). Minibatches are drawn over the global kept rows;
    each rank back-propagates its own rows scaled by its share of the minibatch's normaliser and
    ``dp`` sums the gradients, so every rank takes the single-process step (see distributed.py)."""
    rows = keep.nonzero().squeeze(-1)
    if len(rows) == 0:
        return {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0, "optimizer_steps": 0}
    owned = owned if owned is not None else range(len(keep))
    advantages = advantages.to(rollout.logprobs.device)
    old_logp, tis_weight, gap_stats = training_old_logprobs(cfg, policy, rollout, dp)
    size = cfg.minibatch_size or len(rows)
    totals = torch.zeros(4, dtype=torch.float64)  # loss, kl, clip_fraction, entropy: this rank's weighted parts
    grad_norm, steps, moe_stats = 0.0, 0, []
    replay = rollout.routing if cfg.routing_replay else None
    policy.train()
    replicated, sharded = split_parameters(policy)  # a rank's own experts already hold every rank's gradient
    for chosen in grpo.minibatches(len(rows), size, cfg.mu, generator):
        index = rows[chosen]
        mine = index[(index >= owned.start) & (index < owned.stop)]
        local = mine - owned.start
        batch = rollout.batch.select(local)
        tokens, sequences = batch.completion_mask.sum().cpu(), torch.tensor(float(len(local)))
        # token_mean divides by the minibatch's tokens, the other aggregations by its sequences
        weight = tokens if cfg.aggregation == "token_mean" else sequences
        parts = torch.stack([weight, tokens, sequences])
        weight_share, token_share, sequence_share = parts / dp.sum(parts)
        optimizer.zero_grad(set_to_none=True)
        if len(local):
            with full_precision(policy) if cfg.fp8 == "rollout" else contextlib.nullcontext():
                logp, entropy = completion_logprobs(policy, batch, temperature=cfg.temperature, with_entropy=True,
                                                    routing=None if replay is None else replay[local])
            ref_logp = None
            if reference is not None:
                with torch.no_grad():
                    ref_logp, _ = completion_logprobs(reference, batch, temperature=cfg.temperature)
            loss, stats = grpo.policy_loss(
                logp, old_logp[local], advantages[mine], batch.completion_mask, eps_low=cfg.eps_low,
                eps_high=cfg.eps_high, ratio_level=cfg.ratio_level, aggregation=cfg.aggregation,
                max_length=cfg.max_new_tokens, ref_logp=ref_logp, beta=cfg.beta,
                tis_weight=None if tis_weight is None else tis_weight[local])
            loss = loss * weight_share + aux_loss(policy) * sequence_share  # the balance loss is a sequence mean
            loss.backward()
            share = float(token_share)  # kl, clip fraction and entropy are token means
            mean_entropy = float(grpo.aggregate(entropy, batch.completion_mask, "token_mean"))
            totals += torch.tensor([loss.item(), stats.kl * share, stats.clip_fraction * share, mean_entropy * share],
                                   dtype=torch.float64)
        else:
            token_free_pass(policy, backward=True)  # expert parallelism: serve the other ranks' tokens
        dp.sum_gradients(replicated)
        grad_norm += dp.clip_gradients(replicated, sharded, cfg.grad_clip)
        optimizer.step()
        moe_stats.append(balance_experts(policy, reduce=dp.sum))
        steps += 1
    loss, kl, clip_fraction, entropy = (dp.sum(totals) / steps).tolist()
    return {"loss": loss, "kl": kl, "clip_fraction": clip_fraction, "entropy": entropy, "grad_norm": grad_norm / steps,
            "optimizer_steps": steps, **gap_stats, **mean_stats(moe_stats)}


def grpo_step(cfg: TrainConfig, step: int, envs: Any, policy: DecoderLM, tokenizer: Tokenizer,
              reference: DecoderLM | None, optimizer: torch.optim.Optimizer,
              dp: DataParallel = SINGLE) -> dict[str, Any]:
    """One GRPO step: rollouts for this rank's share of the step's task groups, rewards, then (over the
    global batch every rank gathers) advantages, the update and the step's metrics row."""
    group = cfg.group_size
    groups = dp.shard(cfg.tasks_per_step)
    first_task = step * cfg.tasks_per_step  # the data cursor
    seeds = [first_task + g for g in groups for _ in range(group)]
    scored = rollout_and_score(envs, seeds, policy, tokenizer, max_new_tokens=cfg.max_new_tokens,
                               temperature=cfg.temperature, top_p=cfg.top_p,
                               generator=group_generators(cfg.seed, step, groups), compile=cfg.compile)
    rollout = scored.rollout
    rewards = torch.tensor(scored.rewards, dtype=torch.float32)
    if cfg.overlong_buffer:
        rewards = rewards + grpo.overlong_penalty(torch.tensor(rollout.lengths), cfg.max_new_tokens,
                                                  cfg.overlong_buffer, cfg.overlong_factor)
    batch = dp.concat({"rewards": rewards.numpy(), "lengths": np.asarray(rollout.lengths),
                       "correct": scored.correct, "truncated": np.asarray(rollout.truncated),
                       **{f"reward_{k}": v for k, v in scored.components.items()}})
    rewards, lengths = torch.from_numpy(batch.pop("rewards")), torch.from_numpy(batch.pop("lengths"))
    advantages = grpo.group_advantages(rewards, group, scale_std=cfg.scale_std)
    keep = torch.ones(len(rewards), dtype=torch.bool)
    if cfg.filter_zero_variance:
        keep = grpo.informative_groups(rewards, group)

    started = time.perf_counter()
    stats = grpo_update(cfg, policy, reference, optimizer, rollout, advantages, keep,
                        torch.Generator().manual_seed(cfg.seed * 1_000_003 + step),
                        owned=range(groups.start * group, groups.stop * group), dp=dp)
    seconds = dp.max(torch.tensor([scored.seconds_generate, scored.seconds_verify, time.perf_counter() - started],
                                  dtype=torch.float64)).tolist()  # the slowest rank sets the pace
    return {
        "step": step + 1,
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
        **{k: float(batch.pop(k).mean()) for k in list(batch) if k.startswith("reward_")},
        "accuracy": float(batch["correct"].mean()),
        "response_length": float(lengths.float().mean()),
        "completion_tokens": int(lengths.sum()),
        "truncated_fraction": float(np.mean(batch["truncated"])),
        "groups_kept": int(keep.sum()) // group, **stats,
        "tokens_per_s": float(lengths.sum()) / max(seconds[0], 1e-9),
        "time_generate": seconds[0], "time_verify": seconds[1], "time_train": seconds[2],
    }


def train(cfg: TrainConfig, log: Log | None = None) -> dict[str, Any]:
    """Run (or resume) a training run in ``cfg.run_dir``; returns the summary also written to summary.json.
    Under ``torchrun`` every rank runs this; rank 0 alone writes to ``run_dir`` and logs."""
    dp, owned = launch()
    try:
        return _train(cfg, log or (lambda message: print(message, file=sys.stderr, flush=True)), dp)
    finally:
        shutdown(owned)


def _train(cfg: TrainConfig, log: Log, dp: DataParallel) -> dict[str, Any]:
    if dp.world_size > 1:
        check_world(cfg.tasks_per_step, cfg.curriculum, dp.world_size)
    if not dp.main:
        log = lambda message: None  # noqa: E731
        cfg = dataclasses.replace(cfg, progress=False, tensorboard=False, plot=False)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, dtype = resolve_device(cfg.device, dp.device if dp.world_size > 1 else None), DTYPES[cfg.dtype]
    if dp.main:
        (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")

    # -- the policy: resume, or reuse the saved start, or build it (with the SFT cold start) -----
    checkpoint = dp.broadcast(latest_checkpoint(run_dir) if dp.main else None)
    start_dir = run_dir / "start"
    if dp.main and checkpoint is None and not (start_dir / "config.json").is_file():
        writer = tensorboard_writer(run_dir / "tensorboard" / "sft", enabled=cfg.tensorboard)
        try:
            save_pretrained(*build_policy(cfg.cold_start(), log, writer, device=device), start_dir)
        finally:
            close_writer(writer)
    dp.barrier()  # the other ranks read what rank 0 wrote
    if not (start_dir / "config.json").is_file() or (checkpoint is not None and not checkpoint.is_dir()):
        raise FileNotFoundError(f"rank {dp.rank}: {run_dir} lacks what rank 0 wrote there; "
                                "on several nodes run_dir must be on a filesystem every node shares")
    first_step, state = 0, None
    if checkpoint is not None:
        policy, tokenizer, state = load_checkpoint(checkpoint)
        first_step = state["step"]
        log(f"resuming from {checkpoint} at step {first_step}")
    else:
        policy, tokenizer = load_pretrained(start_dir)
    policy = policy.to(device=device, dtype=dtype)
    if cfg.fp8 != "none":
        policy = to_fp8(policy)
    optimizer_state = state["optimizer"] if state is not None else None
    if cfg.expert_parallel:  # every rank loaded the full model; keep this rank's share of the experts
        optimizer_state = shard_policy(policy, optimizer_state, dp)
    reference = None
    if cfg.beta > 0:  # the frozen start policy; with beta 0 no copy is kept
        reference = load_pretrained(start_dir, dtype=dtype, with_tokenizer=False)[0].to(device)
        reference = reference.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is not None:
        optimizer.load_state_dict(optimizer_state)
        set_rng_states(state["rng"])
    summary = dp.broadcast(_load_json(run_dir / "summary.json") if state is not None and dp.main else {})
    if dp.world_size > 1:
        log(f"data-parallel over {dp.world_size} ranks: {cfg.tasks_per_step} groups per step shared out"
            + (", routed experts split evenly over the ranks" if cfg.expert_parallel else ""))
    writer = tensorboard_writer(run_dir / "tensorboard" / "grpo", enabled=cfg.tensorboard,
                                purge_step=first_step + 1 if first_step else None)
    try:
        _grpo_stage(cfg, run_dir, first_step, policy, tokenizer, reference, optimizer, summary, log, writer,
                    curriculum_state=(state or {}).get("curriculum"), dp=dp)
    finally:
        close_writer(writer)
    if cfg.plot:
        from .plot import plot_curves

        where = plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
        log(f"curves: {where}" if where else "curves: skipped (install the `plot` extra for matplotlib)")
    return summary


def _grpo_stage(cfg: TrainConfig, run_dir: Path, first_step: int, policy: DecoderLM, tokenizer: Tokenizer,
                reference: DecoderLM | None, optimizer: torch.optim.Optimizer, summary: dict[str, Any], log: Log,
                writer: Any | None, curriculum_state: dict[str, Any] | None = None,
                dp: DataParallel = SINGLE) -> None:
    """Held-out accuracy, the GRPO steps from ``first_step`` (metrics, checkpoints), accuracy again;
    ``summary`` is updated and written (by rank 0) as it goes."""
    if "accuracy_start" not in summary:
        summary["accuracy_start"] = evaluate(policy, tokenizer, cfg.env, cfg.eval_tasks, cfg.max_new_tokens,
                                             remote=cfg.remote, dp=dp)
        log(f"held-out accuracy at start: {summary['accuracy_start']:.3f} ({cfg.eval_tasks} tasks, greedy)")
        if dp.main:
            write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        add_scalars(writer, "eval", {"accuracy": summary["accuracy_start"]}, 0)
    metrics_path = run_dir / "metrics.jsonl"
    if dp.main:
        _truncate_metrics(metrics_path, first_step)

    group = cfg.group_size
    num_envs = len(dp.shard(cfg.tasks_per_step)) * group
    if cfg.curriculum:
        envs = curriculum = Curriculum(cfg.env, num_envs, group_size=group, window=cfg.curriculum_window,
                                       target=(cfg.curriculum_low, cfg.curriculum_high), remote=cfg.remote)
        if curriculum_state is not None:
            curriculum.load_state_dict(curriculum_state)
    else:
        curriculum, envs = None, rewardgym.make_vec(cfg.env, num_envs=num_envs, group_size=group, remote=cfg.remote)
    if cfg.closeness:
        envs = VectorRewardShaping(envs, Closeness(cfg.closeness, cfg.closeness_scale))
    progress = Progress(cfg.steps, initial=first_step, desc="grpo", log=log, enabled=cfg.progress)
    try:
        for step in range(first_step, cfg.steps):
            row = grpo_step(cfg, step, envs, policy, tokenizer, reference, optimizer, dp)
            if curriculum is not None:
                row["curriculum_level"] = curriculum.level
            if dp.main:
                with metrics_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
            add_scalars(writer, "grpo", row, step + 1)
            progress.step(
                f"step {step + 1}/{cfg.steps} reward {row['reward_mean']:.3f} acc {row['accuracy']:.3f} "
                f"len {row['response_length']:.1f} kl {row['kl']:.4f} groups {row['groups_kept']}/{cfg.tasks_per_step} "
                f"{row['time_generate'] + row['time_verify'] + row['time_train']:.1f}s",
                {"reward": row["reward_mean"], "acc": row["accuracy"], "len": row["response_length"]})
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                whole, whole_optimizer = gather_full(policy, optimizer, dp)  # experts from their owners, to rank 0
                if dp.main:
                    extra = {"config": to_dict(cfg)}
                    if curriculum is not None:
                        extra["curriculum"] = curriculum.state_dict()
                    save_checkpoint(run_dir, step + 1, whole, tokenizer, whole_optimizer, extra,
                                    keep=cfg.keep_checkpoints)
    finally:
        progress.close()
        envs.close()

    summary["accuracy_end"] = evaluate(policy, tokenizer, cfg.env, cfg.eval_tasks, cfg.max_new_tokens,
                                       remote=cfg.remote, dp=dp)
    summary.update(steps=cfg.steps, eval_tasks=cfg.eval_tasks, env=cfg.env, seed=cfg.seed)
    add_scalars(writer, "eval", {"accuracy": summary["accuracy_end"]}, cfg.steps)
    log(f"held-out accuracy: {summary['accuracy_start']:.3f} at start -> {summary['accuracy_end']:.3f} after GRPO")
    if dp.main:
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _truncate_metrics(path: Path, first_step: int) -> None:
    """Drop rows of steps after the checkpoint we resume from (they will be run again)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= first_step]
    write_atomic(path, "".join(row + "\n" for row in rows))
