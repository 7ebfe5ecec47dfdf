"""One evaluation, from models (or a completions file) to the joined Parquet of rows.

The work is cut into chunks (a few tasks of one model on one env); each chunk generates, verifies
and lands as one shard (see ``store``). A chunk's samples depend only on the model, its tasks and a
generator seeded from (seed, env id, chunk number), so a run resumed after a crash produces the same
rows as one that never stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rewardgym.core.prompts import as_text
from rewardgym.core.types import Task

from .completions import External, file_digest, read_completions
from .models import ModelRef, load_model, model_device, resolve_models
from .store import Shards, check_outputs, write_parquet
from .tasks import EVAL_SEEDS, EnvTasks, env_tasks

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """Everything that decides an evaluation's rows (all of it goes into the resume key)."""

    envs: tuple[str, ...]
    models: tuple[str, ...] = ()
    completions: str | None = None
    n: int | None = None
    seed: int = EVAL_SEEDS
    data: tuple[tuple[str, str], ...] = ()  # (env id, data path) for dataset-backed envs
    samples: int = 1
    temperature: float | None = None  # None: greedy for one sample, 0.6 for several
    top_p: float = 1.0
    max_new_tokens: int = 256
    batch_size: int = 32  # sequences per generate call (and completions per verified chunk)

    def __post_init__(self) -> None:
        if bool(self.models) == (self.completions is not None):
            raise ValueError("give either --model (one or more) or --completions, not both or neither")
        if not self.envs:
            raise ValueError("give at least one --env")
        if self.samples < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("--samples, --batch-size and --max-new-tokens must be at least 1")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.sampling_temperature < 0:
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")
        if self.sampling_temperature == 0 and self.samples > 1 and self.models:
            raise ValueError("--temperature 0 (greedy) makes every sample the same; "
                             "use --samples 1 or a temperature > 0")

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.samples == 1 else 0.6


@dataclass
class Chunk:
    name: str  # the shard's name
    label: str  # the model column: the model's label, or the completions file
    model: ModelRef | None
    env: EnvTasks
    number: int
    positions: list[int]  # model mode: the chunk's task indices
    external: list[External]  # completions mode: the chunk's completions


def _key(settings: Settings, models: Sequence[ModelRef], envs: Sequence[EnvTasks]) -> str:
    identity = {
        "settings": asdict(settings),
        "models": [[m.label, m.fingerprint()] for m in models],
        "completions": file_digest(Path(settings.completions)) if settings.completions else None,
        "tasks": [[e.env_id, e.n] for e in envs],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _chunks(settings: Settings, models: Sequence[ModelRef], envs: Sequence[EnvTasks],
            external: dict[str, list[External]]) -> list[Chunk]:
    out = []
    for m, model in enumerate(models or [None]):
        for e, env in enumerate(envs):
            if model is None:
                rows = external.get(env.env_id, [])
                parts = [rows[i:i + settings.batch_size] for i in range(0, len(rows), settings.batch_size)]
                out += [Chunk(f"m{m:03d}-e{e:03d}-c{c:06d}", str(settings.completions), None, env, c, [], part)
                        for c, part in enumerate(parts)]
            else:
                per = max(1, settings.batch_size // settings.samples)
                out += [Chunk(f"m{m:03d}-e{e:03d}-c{c:06d}", model.label, model, env, c,
                              list(range(s, min(s + per, env.n))), []) for c, s in enumerate(range(0, env.n, per))]
    return out


def _chunk_seed(seed: int, env_id: str, number: int) -> int:
    """Independent of the model: checkpoints compared in one call draw the same random numbers."""
    return int(hashlib.sha256(f"{seed}/{env_id}/{number}".encode()).hexdigest()[:15], 16)


@dataclass
class Draft:
    """A sample before verification."""

    task: Task
    task_index: int
    sample: int
    prompt: str
    completion: str
    tokens: int | None = None
    truncated: bool | None = None


def _generate(chunk: Chunk, model: Any, tokenizer: Any, settings: Settings) -> list[Draft]:
    import torch

    from rewardgym.trainers.rollout import sample
    from rewardgym.trainers.train import STOP

    k = settings.samples
    slots = [(i, chunk.env.task(i), s) for i in chunk.positions for s in range(k)]
    prompts = [as_text(task.prompt) for _, task, _ in slots]
    generator = torch.Generator().manual_seed(_chunk_seed(settings.seed, chunk.env.env_id, chunk.number))
    rollout = sample(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens,
                     temperature=settings.sampling_temperature, top_p=settings.top_p, stop=STOP, generator=generator)
    return [Draft(task, i, s, prompt, text, tokens, truncated) for (i, task, s), prompt, text, tokens, truncated
            in zip(slots, prompts, rollout.texts, rollout.lengths, rollout.truncated, strict=True)]


def _from_file(chunk: Chunk) -> list[Draft]:
    drafts = []
    for e in chunk.external:
        task = chunk.env.task(e.task_index)
        drafts.append(Draft(task, e.task_index, e.sample, e.prompt if e.prompt is not None else as_text(task.prompt),
                            e.completion, e.completion_tokens))
    return drafts


def _canonical(parsed: Any) -> str | None:
    return None if parsed is None else json.dumps(parsed, sort_keys=True, default=str)


def _rows(chunk: Chunk, drafts: list[Draft], seconds_generate: float | None) -> list[dict[str, Any]]:
    """Verify the drafts as one vector-env batch; one row each."""
    started = time.perf_counter()
    verdicts, components = chunk.env.score([d.task for d in drafts], [d.completion for d in drafts])
    per_verify = (time.perf_counter() - started) / len(drafts)
    per_generate = None if seconds_generate is None else seconds_generate / len(drafts)
    step = chunk.model.step if chunk.model else None
    return [{
        "model": chunk.label, "step": step, "env_id": chunk.env.env_id, "task_id": d.task.id, "task_index": d.task_index,
        "sample": d.sample, "prompt": d.prompt, "completion": d.completion, "reward": float(v.reward),
        "reward_components": parts, "correct": bool(v.correct), "reason": v.reason, "parsed": _canonical(v.parsed),
        "completion_tokens": d.tokens, "truncated": d.truncated, "time_generate": per_generate,
        "time_verify": per_verify,
    } for d, v, parts in zip(drafts, verdicts, components, strict=True)]


def _pending_by_model(chunks: list[Chunk], shards: Shards) -> Iterator[tuple[ModelRef | None, list[Chunk]]]:
    todo = [c for c in chunks if not shards.done(c.name)]
    for model in dict.fromkeys(c.model for c in todo):
        yield model, [c for c in todo if c.model == model]


def _work(chunks: list[Chunk], shards: Shards, settings: Settings, bar: Any, threads: int, device: Any) -> None:
    """Generate (or read), verify and save every chunk not yet in ``shards``, one model loaded at a time
    and moved to ``device``."""
    busy, count = 0.0, 0  # seconds generating and verifying (model loading excluded), samples done
    scored: dict[tuple[str, str], list[int]] = {}  # (model, env) -> [samples, correct]: accuracy per pair
    for model_ref, todo in _pending_by_model(chunks, shards):
        if model_ref is not None:
            if threads:
                import torch

                torch.set_num_threads(threads)
            model, tokenizer = load_model(model_ref)
            model = model.to(device)
        for chunk in todo:
            began = time.perf_counter()
            if model_ref is None:
                drafts, seconds = _from_file(chunk), None
            else:
                drafts = _generate(chunk, model, tokenizer, settings)
                seconds = time.perf_counter() - began
            rows = _rows(chunk, drafts, seconds)
            shards.write(chunk.name, rows)
            busy += time.perf_counter() - began
            count += len(rows)
            pair = scored.setdefault((chunk.label, chunk.env.env_id), [0, 0])
            pair[0] += len(rows)
            pair[1] += sum(r["correct"] for r in rows)
            rate, accuracy = count / max(busy, 1e-9), pair[1] / max(pair[0], 1)
            bar.step(f"{chunk.name} {chunk.label} {chunk.env.env_id}: {pair[0]} samples, accuracy {accuracy:.3f} "
                     f"(all models: {count} samples, {rate:.1f} samples/s)", {"samples/s": rate, "acc": accuracy})


def run(settings: Settings, out: Path, *, log: Log | None = None, progress: bool = True, threads: int = 0,
        device: str = "auto", also_writes: Sequence[Path] = ()) -> tuple[pa.Table, dict[str, Any]]:
    """Evaluate (or finish evaluating) into ``out``; returns the rows and the run's identity
    (``key`` and ``settings``), which the summary beside ``out`` repeats. Before any work, every
    file the run would write (``out``, its summary and plot, ``also_writes``) must be missing or
    this run's own. ``device`` (the learner's setting, see ``rewardgym.trainers.device``) and
    ``threads`` say where models run; like the threads, the device is not part of the resume key."""
    if out.suffix != ".parquet":
        raise ValueError(f"--out {out}: expected a .parquet path")
    from rewardgym.trainers.reporting import Progress

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    envs = env_tasks(settings.envs, settings.n, settings.seed, dict(settings.data))
    try:
        external = read_completions(Path(settings.completions), {e.env_id: e for e in envs}) \
            if settings.completions else {}
        models = resolve_models(list(settings.models)) if settings.models else []
        identity = {"key": _key(settings, models, envs), "settings": asdict(settings),
                    "models": [{"label": m.label, "step": m.step} for m in models],
                    "tasks": {e.env_id: e.n for e in envs}}
        if check_outputs(out, identity["key"], also_writes):
            log(f"{out}: already complete for these settings")
            Shards.discard(out, identity["key"])
            return pq.read_table(out), identity
        for env in envs:
            if settings.completions and env.env_id not in external:
                log(f"{env.env_id}: no completions for it in {settings.completions}")
        chunks = _chunks(settings, models, envs, external)
        placement = model_device(device) if models else None
        shards = Shards(out, identity["key"], identity)
        done = sum(shards.done(c.name) for c in chunks)
        if done:
            log(f"resuming: {done} of {len(chunks)} chunks already in {shards.dir}")
        bar = Progress(len(chunks), initial=done, desc="eval", log=log, enabled=progress)
        try:
            _work(chunks, shards, settings, bar, threads, placement)
        finally:
            bar.close()
        table = shards.join([c.name for c in chunks])
        write_parquet(table, out, identity)
        shards.remove()
        return table, identity
    finally:
        for env in envs:
            env.close()
