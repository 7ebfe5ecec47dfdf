"""``rewardgym eval`` and ``rewardgym sample``: argument parsing and what each prints and writes.

Heavy imports (pyarrow, torch) wait until a command runs, so ``rewardgym --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .tasks import EVAL_SEEDS


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_common(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", action="append", metavar="PATH",
                        help="model directory (run_dir/start, run_dir/checkpoints/step-N, an HF checkpoint) or a run "
                             "directory (its start and every checkpoint); repeatable")
    source.add_argument("--completions", metavar="FILE",
                        help="JSONL/Parquet of completions from another system: only verify and score them "
                             "(schema: rewardgym/eval/completions.py)")
    p.add_argument("--env", action="append", required=True, metavar="ID", help="environment id; repeatable")
    p.add_argument("--data", action="append", default=[], metavar="ID=PATH",
                   help="data file for a dataset-backed env (repeatable)")
    p.add_argument("--n", type=int, metavar="TASKS",
                   help="tasks per env (default: the whole dataset, or 100 seeds for procedural envs)")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="samples per task (default 1)")
    p.add_argument("--seed", type=int, default=EVAL_SEEDS,
                   help="task i is seed SEED+i (default: the learner's held-out range); also seeds sampling")
    p.add_argument("--temperature", type=float,
                   help="sampling temperature (default: 0, greedy, for one sample; 0.6 for several)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32, help="sequences per generate call and per saved chunk")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto",
                   help="where models run: auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--k", type=int, action="append", metavar="K",
                   help="report pass@K (repeatable; default: 1 and the samples per task)")
    p.add_argument("--no-progress", action="store_true", help="one line per chunk instead of a progress bar")


def add_parsers(sub: Any) -> None:
    """Register ``eval`` and ``sample`` on the top-level subparsers."""
    p = sub.add_parser("eval", help="evaluate checkpoints (or a completions file) on envs -> Parquet + summary",
                       description="Generate, verify and score; one Parquet row per sample, a summary table "
                                   "(also OUT.json) and, for several checkpoints, a plot by step (OUT.png). "
                                   "Rerun the same command to resume an interrupted evaluation.")
    _add_common(p)
    p.add_argument("--out", default="results.parquet", help="Parquet of rows (default results.parquet)")
    p.set_defaults(func=eval_main)

    p = sub.add_parser("sample", help="rejection sampling: keep verified completions as SFT data",
                       description="Evaluate, then write the kept (prompt, completion) pairs in the format "
                                   "`rewardgym sft data=...` reads.")
    _add_common(p)
    p.add_argument("--keep", choices=["correct", "all"], default="correct", help="which samples to keep")
    p.add_argument("--shortest", type=int, metavar="K", help="keep only the K shortest kept samples per task")
    p.add_argument("--out", default="sft.parquet", help="SFT pairs (default sft.parquet)")
    p.add_argument("--results", help="per-sample results (default: OUT with .results.parquet)")
    p.set_defaults(func=sample_main)


def _data(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    from ..cli import _parse_data

    return tuple((env_id, kwargs["data"]) for env_id, kwargs in _parse_data(pairs).items())


def _evaluate(args: argparse.Namespace, out: Path, also_writes: tuple[Path, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """Run (or resume) the evaluation; print the scores, write the summary JSON and the plot."""
    import rewardgym

    from .report import plot_by_step, scores, table_text
    from .runner import Settings, run
    from .store import summary_paths, write_json

    settings = Settings(envs=tuple(rewardgym.full_id(e) for e in args.env), models=tuple(args.model or ()),
                        completions=args.completions, n=args.n, seed=args.seed, data=_data(args.data), samples=args.samples,
                        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size)
    if args.model and args.k and max(args.k) > args.samples:
        raise ValueError(f"--k {max(args.k)} needs at least that many --samples (got {args.samples})")
    table, identity = run(settings, out, log=_log, progress=not args.no_progress, threads=args.threads,
                          device=args.device, also_writes=also_writes)
    records = scores(table, args.k)
    print(table_text(records))
    summary, plot = summary_paths(out)
    write_json({**identity, "scores": records}, summary)
    _log(f"rows: {out} ({table.num_rows})\nsummary: {summary}")
    if len({r["model"] for r in records}) > 1:
        where = plot_by_step(records, plot)
        _log(f"plot: {where}" if where else "plot: skipped (install the `plot` extra for matplotlib)")
    return table, identity


def eval_main(args: argparse.Namespace) -> int:
    _evaluate(args, Path(args.out))
    return 0


def sample_main(args: argparse.Namespace) -> int:
    from .sample import select
    from .store import write_parquet

    out = Path(args.out)
    if out.suffix != ".parquet":
        raise ValueError(f"--out {out}: expected a .parquet path")
    results = Path(args.results) if args.results else out.with_suffix(".results.parquet")
    if results.resolve() == out.resolve():
        raise ValueError("--results and --out must be different files")
    table, identity = _evaluate(args, results, also_writes=(out,))
    kept = select(table, keep=args.keep, shortest=args.shortest)
    write_parquet(kept, out, identity)
    _log(f"sft pairs: {out} ({kept.num_rows} of {table.num_rows} samples kept)")
    return 0
