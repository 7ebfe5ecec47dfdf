"""Batched sampling with a KV cache, and the token layout shared by sampling, SFT and GRPO.

Layout: prompts left-padded to a common width P, completions right-padded after it, so
completion token j of every row sits at column P + j. The same ``Batch`` feeds generation,
the SFT loss and the GRPO loss, which is why log-probs recorded while sampling line up
exactly with those recomputed for training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from .compiled_decode import CompiledDecoder, check_compilable, padded_capacity
from .models import DecoderLM, Tokenizer

STOP_TAIL_TOKENS = 16  # decoded window used to detect stop strings


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, P + T]
    attention_mask: torch.Tensor  # [B, P + T], 1 for real tokens
    completion_mask: torch.Tensor  # [B, T] float, 1 for completion tokens
    prompt_width: int  # P

    @property
    def completion_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width:]

    def select(self, rows: torch.Tensor) -> "Batch":
        """The sub-batch of ``rows`` (same layout and width)."""
        return Batch(self.input_ids[rows], self.attention_mask[rows], self.completion_mask[rows], self.prompt_width)

    def to(self, device: torch.device) -> "Batch":
        """The same batch on ``device`` (itself when already there)."""
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.completion_mask.to(device),
                     self.prompt_width)


def pack(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Batch:
    """Left-pad prompts and right-pad completions into one Batch."""
    if len(prompts) != len(completions):
        raise ValueError(f"pack: {len(prompts)} prompts but {len(completions)} completions")
    p = max(len(x) for x in prompts)
    t = max(1, max(len(x) for x in completions))
    ids = torch.full((len(prompts), p + t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), p + t), dtype=torch.long)
    for i, (a, b) in enumerate(zip(prompts, completions)):
        ids[i, p - len(a):p] = torch.tensor(a, dtype=torch.long)
        ids[i, p:p + len(b)] = torch.tensor(b, dtype=torch.long)
        mask[i, p - len(a):p + len(b)] = 1
    return Batch(ids, mask, mask[:, p:].float(), p)


def shared_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct prompts (first ``width`` columns of ids and mask) and, per row, the index of its
    prompt among them: a GRPO group's G rows repeat one prompt, so its forward pass is done once."""
    both = torch.cat([input_ids[:, :width], attention_mask[:, :width]], dim=1)
    unique, inverse = torch.unique(both, dim=0, return_inverse=True)
    return unique[:, :width], unique[:, width:], inverse


def completion_logits(model: DecoderLM, batch: Batch, routing: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [B, T, V] predicting each completion token. Rows that share a prompt share its forward
    pass (through a gathered KV cache): same values as one pass over the whole batch, less work. A
    Mixture-of-Experts model takes one pass: its balance loss and expert load are per sequence, and
    ``routing`` [B, P + T, MoE layers, k] replays its experts."""
    p, t = batch.prompt_width, batch.completion_ids.shape[1]
    ids, mask = batch.input_ids, batch.attention_mask
    prompt_ids, prompt_mask, inverse = shared_prompts(ids, mask, p)
    if len(prompt_ids) == len(ids) or model.config.num_experts:
        return model(ids, mask, routing=routing)[:, p - 1:-1]
    cache = model.new_cache(len(prompt_ids), p)
    first = model(prompt_ids, prompt_mask, cache)[:, -1:][inverse]
    if t == 1:
        return first
    rest = model(ids[:, p:-1], mask[:, :-1], cache.gather(inverse, p + t - 1))
    return torch.cat([first, rest], dim=1)


def completion_logprobs(model: DecoderLM, batch: Batch, *, temperature: float = 1.0, with_entropy: bool = False,
                        routing: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [B, T] of the completion tokens under ``model`` (logits divided by
    ``temperature``, the distribution that was sampled), and optionally the per-token entropy.
    ``routing`` (a Rollout's, rows matching ``batch``) replays the experts used while sampling."""
    logits = completion_logits(model, batch, routing).float()
    if temperature != 1.0:  # skipped at 1: a division and its backward over [B, T, V]
        logits = logits / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():  # a statistic only: no graph for it
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


@dataclass
class Rollout:
    batch: Batch
    logprobs: torch.Tensor  # [B, T] log-probs recorded at sampling time (0 past the end)
    texts: list[str]
    lengths: list[int]  # completion tokens, stop token included
    truncated: list[bool]  # hit max_new_tokens before a stop
    routing: torch.Tensor | None = None  # MoE: [B, P + T, MoE layers, k] experts used (int16, -1 = not fed)


@lru_cache(maxsize=8)
def stop_candidates(tokenizer: Tokenizer, stop: tuple[str, ...]) -> torch.Tensor:
    """Per vocabulary id, whether emitting it can complete one of ``stop``: a stop string that was
    not in the text before appears only when the new token supplies its last character. Tokens that
    decode alone to a partial character (U+FFFD) count when a stop string ends in a non-ASCII
    character (an ASCII byte always decodes as itself), and every token counts when one ends in
    whitespace (a decoder may drop a lone token's leading space)."""
    if any(not s or s[-1].isspace() for s in stop):
        return torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    last = {s[-1] for s in stop}
    if any(not c.isascii() for c in last):
        last.add("\ufffd")
    texts = tokenizer.decode_batch([[i] for i in range(tokenizer.vocab_size)])
    return torch.tensor([any(c in text for c in last) for text in texts], dtype=torch.bool)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) the tokens outside the smallest set whose probability reaches ``top_p``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def draw_tokens(probs: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """One token per row of ``probs`` by inverting its cumulative distribution at a uniform draw (one
    uniform per row: ``torch.multinomial`` costs ~10x more per call on a small CPU batch); with a
    list of generators, the rows split into equal consecutive blocks, each drawing from its own
    (see ``sample``). The uniforms come from CPU generators whatever ``probs``' device, so a seed
    draws the same numbers on every device (a few floats a step to copy)."""
    if generator is None or isinstance(generator, torch.Generator):
        uniform = torch.rand(len(probs), 1, generator=generator)
    else:
        size = len(probs) // len(generator)
        uniform = torch.cat([torch.rand(size, 1, generator=g) for g in generator])
    uniform = uniform.to(probs.device)
    cdf = probs.cumsum(-1)
    # The first token whose cumulative mass exceeds u * total: never one of zero probability (its
    # cdf equals its predecessor's), and never past the end, as u < 1 keeps u * total < total
    # through float rounding.
    return torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True).squeeze(-1)


@torch.no_grad()
def sample(model: DecoderLM, tokenizer: Tokenizer, prompts: list[str], *, max_new_tokens: int,
           temperature: float = 1.0, top_p: float = 1.0, stop: tuple[str, ...] = ("</answer>",),
           generator: torch.Generator | Sequence[torch.Generator] | None = None, compile: bool = False) -> Rollout:
    """One completion per prompt (repeat a prompt G times for a group). ``temperature=0`` is greedy.

    A row stops at EOS, at a stop string, or after ``max_new_tokens``. Recorded log-probs are those
    of the temperature-scaled distribution before top-p, as ``completion_logprobs`` recomputes them.
    A list of generators splits the rows into that many equal consecutive blocks (GRPO groups),
    each drawing from its own, so a group's samples do not depend on which groups share the batch.
    ``compile=True`` runs the decode steps through ``torch.compile`` (dense models only; the first
    call per batch size and cache width compiles, seconds; then each step costs ~35% less on a CPU).
    The returned tensors are on the model's device.
    """
    if isinstance(generator, Sequence) and (not generator or len(prompts) % len(generator)):
        raise ValueError(f"sample: {len(prompts)} prompts do not split into {len(generator)} generator blocks")
    if compile:
        check_compilable(model)
    was_training = model.training
    model.eval()
    # A group repeats its prompt G times: encode each distinct prompt once, one by one (a batch call
    # costs more in thread hand-offs than it saves on a few short texts).
    encoded = {text: tokenizer.encode(text) for text in dict.fromkeys(prompts)}
    prompt_ids = [encoded[text] for text in prompts]
    device = model.lm_head.weight.device
    start = pack(prompt_ids, [[] for _ in prompts], tokenizer.pad_token_id).to(device)
    b, p = len(prompts), start.prompt_width
    ids, mask = start.input_ids[:, :p], start.attention_mask[:, :p]
    unique_ids, unique_mask, inverse = shared_prompts(ids, mask, p)
    capacity = padded_capacity(p + max_new_tokens) if compile else p + max_new_tokens
    if len(unique_ids) < b:  # a group's G rows prefill their prompt once
        cache = model.new_cache(len(unique_ids), p)
        logits = model(unique_ids, unique_mask, cache)[:, -1].float()[inverse]
        cache = cache.gather(inverse, capacity)
        routes = [None if (used := model.last_routing()) is None else used[inverse]]
    else:
        cache = model.new_cache(b, capacity)
        logits = model(ids, mask, cache)[:, -1].float()
        routes = [model.last_routing()]
    # Bookkeeping per row in Python (a token list each, a flag each): a handful of tensor ops per
    # step on a small model cost as much as the forward pass; only the draw stays batched.
    out_logp = torch.zeros((b, max_new_tokens), device=device)  # every row's, masked past its end at the end
    generated: list[list[int]] = [[] for _ in range(b)]
    alive = [True] * b
    live = torch.ones((b, 1), dtype=torch.long, device=device)  # alive as the next column of the attention mask
    decode = CompiledDecoder(model, cache, mask) if compile else None
    may_stop = stop_candidates(tokenizer, tuple(stop)).tolist() if stop else None
    for step in range(max_new_tokens):
        scaled = logits / temperature if temperature > 0 and temperature != 1.0 else logits
        if temperature > 0:
            probs = top_p_filter(scaled, top_p).softmax(-1)
            token = draw_tokens(probs, generator)
        else:
            token = scaled.argmax(-1)
        out_logp[:, step] = F.log_softmax(scaled, -1).gather(-1, token[:, None]).squeeze(-1)
        ended = False
        for row, new in enumerate(token.tolist()):
            if not alive[row]:
                continue
            tokens = generated[row]
            tokens.append(new)
            if new == tokenizer.eos_token_id or (
                    may_stop is not None and may_stop[new]
                    and any(s in tokenizer.decode(tokens[-STOP_TAIL_TOKENS:]) for s in stop)):
                alive[row], ended = False, True
        if ended:
            live = torch.tensor(alive, dtype=torch.long, device=device)[:, None]
        if not any(alive) or step + 1 == max_new_tokens:
            break
        if decode is not None:
            logits = decode(token, live).float()
        else:
            mask = torch.cat([mask, live], dim=1)
            logits = model(token[:, None], mask, cache)[:, -1].float()
            routes.append(model.last_routing())
    lengths = [len(ids) for ids in generated]
    width = max(1, max(lengths))
    past_end = torch.arange(width, device=device) >= torch.tensor(lengths, device=device)[:, None]
    out_logp = out_logp[:, :width].masked_fill(past_end, 0.0)
    batch = pack(prompt_ids, generated, tokenizer.pad_token_id).to(device)
    texts = [tokenizer.decode(ids) for ids in generated]  # see the prompts' encoding above
    model.train(was_training)
    return Rollout(batch=batch, logprobs=out_logp, texts=texts, lengths=lengths, truncated=alive,
                   routing=_routing(routes, p + width))


def _routing(routes: list[torch.Tensor | None], columns: int) -> torch.Tensor | None:
    """The experts recorded at each forward pass of sampling laid out like the Batch: the last
    sampled token was never fed back, so its column (and any beyond) is -1."""
    if routes[0] is None:
        return None
    routing = torch.cat(routes, dim=1).to(torch.int16)
    missing = routing.new_full((routing.shape[0], columns - routing.shape[1], *routing.shape[2:]), -1)
    return torch.cat([routing, missing], dim=1)
