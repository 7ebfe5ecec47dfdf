"""The ``rewardgym`` command: list, check, demo, train, sft, eval, sample, new-env and serve."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import gymnasium as gym

import rewardgym

from .core import DataRequired, RegistryError


def _list(args: argparse.Namespace) -> int:
    entries = rewardgym.list_envs(tag=args.tag)
    if args.json:
        print(json.dumps([{"id": e.id, "description": e.description, "tags": list(e.tags), "kwargs": e.kwargs,
                           "verifier": e.verifier, "data": e.data} for e in entries], indent=1))
        return 0
    width = max((len(e.id) for e in entries), default=0)
    for e in entries:
        print(f"{e.id:<{width}}  [{', '.join(e.tags)}]\n{'':<{width}}  {e.description}")
    print(f"\n{len(entries)} environments")
    return 0


def _parse_data(pairs: list[str]) -> dict[str, dict]:
    out = {}
    for pair in pairs:
        env_id, sep, path = pair.partition("=")
        if not sep or not path:
            raise SystemExit(f"--data expects ID=PATH, got {pair!r}")
        out[rewardgym.full_id(env_id)] = {"data": path}
    return out


def _check(args: argparse.Namespace) -> int:
    from . import conformance

    for env_id in args.ids:
        rewardgym.spec(env_id)  # unknown ids fail before any work
    results = conformance.run(args.ids or None, make_kwargs=_parse_data(args.data), determinism=not args.fast)
    for r in results:
        print(f"{r.status:<4}  {r.env_id:<36} {r.check:<12} {r.message}")
    failed = [r for r in results if not r.ok]
    skipped = sum(r.skipped for r in results)
    print(f"\n{len(results) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped")
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    """A scripted rollout: for each env, a reference completion and a bad one, with their verdicts."""
    for entry in rewardgym.list_envs():
        if "reasoning-gym" in entry.tags:
            continue  # the bridged catalogue is large; `rewardgym list --tag reasoning-gym` shows it
        try:
            env = rewardgym.make(entry.id)
        except DataRequired:
            print(f"== {entry.id}: skipped (dataset env; pass data=PATH)\n")
            continue
        for label, completion in (("reference", None), ("no answer", "I think it is 42.")):
            prompt, info = env.reset(seed=args.seed)
            completion = completion or env.unwrapped.reference(info["task"]) or ""
            _, reward, _, _, info = env.step(completion)
            if label == "reference":
                question = prompt.rsplit("User: ", 1)[-1].removesuffix("\nAssistant:")
                print(f"== {entry.id} (seed {args.seed})\n   task:   {question[:300]}")
            print(f"   {label:<9} {completion[:120]!r}\n             reward {reward} ({info['verdict'].reason})")
        print()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .service import Limits, serve

    serve(args.host, args.port, Limits(max_request_bytes=args.max_request_mb * 1024 * 1024,
                                       max_batch=args.max_batch, max_concurrency=args.max_concurrency))
    return 0


def _new_env(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .scaffold import new_env

    for path in new_env(args.name, Path(args.root)):
        print(f"wrote {path}")
    print(f"\nnext: edit those files, then `rewardgym check rewardgym/{args.name}-v0` (see CONTRIBUTING.md)")
    return 0


def _learner(args: argparse.Namespace) -> int:
    try:
        from .trainers import cli as trainers_cli
    except ImportError as exc:
        raise ImportError(f"the learner needs torch: pip install torch==2.13.0 && pip install -e '.[torch]' ({exc})") from exc
    return (trainers_cli.train_main if args.command == "train" else trainers_cli.sft_main)(args.settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardgym", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rewardgym {rewardgym.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="show every registered environment id")
    p.add_argument("--tag", help="only ids with this tag")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list)

    p = sub.add_parser("check", help="run the conformance suite on some or all ids")
    p.add_argument("ids", nargs="*", help="environment ids (default: all)")
    p.add_argument("--data", action="append", default=[], metavar="ID=PATH",
                   help="data file for a dataset-backed env (repeatable)")
    p.add_argument("--fast", action="store_true", help="skip the two-process determinism check")
    p.set_defaults(func=_check)

    p = sub.add_parser("demo", help="scripted rollout: a reference and a bad completion per env")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_demo)

    for name, text in (("train", "SFT cold start then GRPO (no arguments: the embedded countdown example)"),
                       ("sft", "fine-tune on (prompt, completion) pairs")):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("settings", nargs=argparse.REMAINDER, help="[--config FILE.yaml] [key=value ...]; --help lists them")
        p.set_defaults(func=_learner)

    from .eval.cli import add_parsers as add_eval_parsers

    add_eval_parsers(sub)

    p = sub.add_parser("new-env", help="scaffold a new environment (module, verifier, registry entry, examples)")
    p.add_argument("name", help="CamelCase name, e.g. WordSort -> rewardgym/WordSort-v0")
    p.add_argument("--root", default=".", help="repository root holding the rewardgym package")
    p.set_defaults(func=_new_env)

    p = sub.add_parser("serve", help="serve reset/score over HTTP for remote learners")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    p.add_argument("--max-concurrency", type=int, default=8, help="requests served at once; more get 503")
    p.add_argument("--max-batch", type=int, default=8192, help="items per request")
    p.add_argument("--max-request-mb", type=int, default=64)
    p.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["train"], ["sft"]):  # the learner parses its own settings, --help included
        args = argparse.Namespace(command=argv[0], settings=argv[1:], func=_learner)
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RegistryError, ValueError, ImportError, FileNotFoundError, FileExistsError, gym.error.Error) as exc:
        print(f"rewardgym: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
