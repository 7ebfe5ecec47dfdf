"""Supervised fine-tuning on (prompt, completion) pairs: R1's cold start, and distillation.

Data: JSONL (one ``{"prompt": ..., "completion": ...}`` object a line) or Parquet with those two
columns. The embedded cold-start set is the countdown environment's reference solutions, which
are already in the R1 template (``<think>...</think>\\n<answer>...</answer>``). The loss is the
mean cross-entropy of the completion tokens (and the EOS after them); prompt tokens are context.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

import rewardgym

from .models import DecoderLM, Tokenizer
from .models.moe import aux_loss, balance_experts
from .rollout import Batch, completion_logprobs, pack

Pair = tuple[str, str]


def load_pairs(path: str | Path) -> list[Pair]:
    """(prompt, completion) pairs from a .jsonl or .parquet file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SFT data file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = {"prompt", "completion"} - set(table.column_names)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; have {table.column_names}")
        rows = table.select(["prompt", "completion"]).to_pylist()
        return [_pair(row, f"{path}: row {i}") for i, row in enumerate(rows)]
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: SFT data must be .jsonl or .parquet")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
        pairs.append(_pair(row, f"{path}:{number}"))
    if not pairs:
        raise ValueError(f"{path}: no (prompt, completion) pairs")
    return pairs


def _pair(row: object, where: str) -> Pair:
    if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str)):
        raise ValueError(f"{where}: expected an object with string fields 'prompt' and 'completion'")
    return row["prompt"], row["completion"]


def reference_pairs(env_id: str, seeds: range) -> list[Pair]:
    """(prompt, reference completion) for each seed: the embedded cold-start set."""
    env = rewardgym.make(env_id)
    pairs = []
    for seed in seeds:
        prompt, info = env.reset(seed=seed)
        completion = env.unwrapped.reference(info["task"])
        if completion is None:
            raise ValueError(f"{env_id} has no reference solutions; give SFT data with sft_data=...")
        pairs.append((prompt, completion))
    env.close()
    return pairs


def sft_batch(tokenizer: Tokenizer, pairs: list[Pair]) -> Batch:
    prompts = tokenizer.encode_batch([p for p, _ in pairs])
    completions = [ids + [tokenizer.eos_token_id] for ids in tokenizer.encode_batch([c for _, c in pairs])]
    return pack(prompts, completions, tokenizer.pad_token_id)


def sft_loss(model: DecoderLM, batch: Batch) -> torch.Tensor:
    logp, _ = completion_logprobs(model, batch)
    return -(logp * batch.completion_mask).sum() / batch.completion_mask.sum()


def run_sft(model: DecoderLM, tokenizer: Tokenizer, pairs: list[Pair], *, steps: int, batch_size: int, lr: float,
            seed: int, log: Callable[[int, float], None] | None = None) -> list[float]:
    """``steps`` AdamW steps on shuffled minibatches (with a linear warm-up and cosine decay);
    deterministic for a seed. Returns the loss of every step."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + torch.cos(torch.tensor(torch.pi * s / max(1, steps))).item()))
    order = torch.randperm(len(pairs), generator=generator).tolist()
    losses, cursor = [], 0
    device = next(model.parameters()).device
    model.train()
    for step in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(pairs), generator=generator).tolist(), 0
        chunk = [pairs[i] for i in order[cursor:cursor + batch_size]]
        cursor += batch_size
        loss = sft_loss(model, sft_batch(tokenizer, chunk).to(device))
        optimizer.zero_grad(set_to_none=True)
        (loss + aux_loss(model)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        balance_experts(model)
        schedule.step()
        losses.append(loss.item())
        if log is not None:
            log(step, losses[-1])
    return losses
