"""Verdicts per second: rewardgym's pooled MathVerifier against plain math-verify, same pairs, one run.

Pairs: for each MATH-500 record, its gold answer written as a model would (a line of
rationale, then ``\\boxed{gold}``) and, as a wrong answer, the next record's gold. Plain
math-verify is ``verify(parse(gold), parse(completion))`` with its default (signal-based)
timeouts, run twice over: in this process (which from its second round on has seen every
answer before), and in a fresh interpreter per round that ran the answer forms our workers
warm up on through plain math-verify (and has not seen the benchmark's answers). Ours is
``MathVerifier.verify_batch`` on a fresh pool of N workers, with a fresh cache. A second,
small set of hostile answers (power towers) measures the slowest call; plain math-verify runs
each in a child process so a hang cannot stop the benchmark.

    python benchmarks/math/bench.py --data ../shared/data/math500_test.jsonl --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import statistics
import threading
import time
from pathlib import Path

from rewardgym.core.types import Task
from rewardgym.core.workers import WorkerPool
from rewardgym.verifiers.math import MathVerifier, make_math_pool
from rewardgym.verifiers.math_warm import WARM_UP_PAIRS

HOSTILE = ["\\boxed{9^{9^{9}}}", "\\boxed{9^{9^{9^{9}}}}", "\\boxed{10^{10^{10}}}", "\\boxed{2^{2^{2^{2^{2^{2}}}}}}",
           "\\boxed{(10^{10^{7}})!}"]
#: A plain math-verify call on hostile input that takes longer than this is counted as hung.
HANG_CAP = 60.0


def pairs(path: Path) -> list[tuple[str, str]]:
    golds = [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]
    def write(answer: str) -> str:
        return f"Working through the problem step by step.\nTherefore, the final answer is $\\boxed{{{answer}}}$."
    right = [(g, write(g)) for g in golds]
    wrong = [(g, write(golds[(i + 1) % len(golds)])) for i, g in enumerate(golds)]
    return right + wrong


def plain(gold: str, completion: str) -> bool:
    from math_verify import parse, verify
    return bool(verify(parse("\\boxed{" + gold + "}"), parse(completion)))


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_scaling(workers: int) -> float:
    """Control: how much faster 4 * workers pure-Python CPU loops finish on ``workers`` processes
    than on one, i.e. the scaling this machine allows right now."""
    def timed(n: int) -> float:
        with WorkerPool(n, import_main=True) as pool:  # spin() lives in this script
            pool.map(spin, [1] * n, timeout=60)  # start the workers
            start = time.perf_counter()
            pool.map(spin, [2_000_000] * (4 * workers), timeout=600)
            return time.perf_counter() - start
    return timed(1) / timed(workers)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def run_plain(items: list[tuple[str, str]]) -> tuple[float, float, list[bool]]:
    """Wall and CPU seconds of plain math-verify on the items, and its verdicts. sympy's caches
    are cleared first: our workers start fresh every round, so plain must not reuse earlier rounds."""
    from sympy.core.cache import clear_cache
    clear_cache()
    start, cpu = time.perf_counter(), time.process_time()
    verdicts = [plain(g, c) for g, c in items]
    return time.perf_counter() - start, time.process_time() - cpu, verdicts


def _plain_warm_up() -> None:
    """A fresh plain process's start: math-verify imported, then the answer forms our fork
    server warms up on, through plain math-verify (none of our parsing changes)."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    for gold, answer in WARM_UP_PAIRS:
        plain(gold, f"$\\boxed{{{answer}}}$")


def run_plain_fresh(items: list[tuple[str, str]]) -> tuple[float, float, list[bool]]:
    """run_plain in a new interpreter warmed like our workers' fork server, on the same answer
    forms, but that has not seen this benchmark's answers (this process has, from its second
    round on)."""
    with WorkerPool(1, initializer=_plain_warm_up, start_method="spawn", import_main=True) as pool:
        pool.start()  # the warm-up is not timed
        result = pool.call(run_plain, items, timeout=HANG_CAP * len(items))
    if not result.ok:
        raise RuntimeError(f"plain math-verify in a fresh process: {result.error}")
    return result.value


def run_ours(items: list[tuple[str, str]], workers: int) -> tuple[float, float, float, list[bool]]:
    """Wall and CPU seconds (this process and the workers) of our verifier, start-up, verdicts."""
    with make_math_pool(workers) as pool:
        warm = time.perf_counter()
        pool.start()
        startup = time.perf_counter() - warm
        verifier = MathVerifier(pool=pool)
        tasks = [Task(f"p{i}", "", g) for i, (g, _) in enumerate(items)]
        pids = pool.pids
        start, cpu, worker_cpu = time.perf_counter(), time.process_time(), cpu_seconds(pids)
        verdicts = verifier.verify_batch([c for _, c in items], tasks)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu + cpu_seconds(pids) - worker_cpu
        return wall, cpu, startup, [v.correct for v in verdicts]


def _plain_child(conn, completion: str) -> None:
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401  (import time is not the call's time)
    conn.send("ready")
    start = time.perf_counter()
    plain("3", completion)
    conn.send(time.perf_counter() - start)


def slowest_plain(completions: list[str]) -> list[float]:
    """Time of plain math-verify on each hostile answer, in a child process, capped at HANG_CAP."""
    ctx = mp.get_context("spawn")
    times = []
    for completion in completions:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_plain_child, args=(child, completion))
        proc.start()
        parent.recv()
        times.append(parent.recv() if parent.poll(HANG_CAP) else HANG_CAP)
        proc.kill()
        proc.join()
    return times


def slowest_ours(completions: list[str], limit: float) -> tuple[list[float], list[str]]:
    pool = make_math_pool(1)
    try:
        verifier = MathVerifier(time_limit=limit, pool=pool)
        verifier.verify("\\boxed{1}", Task("w", "", "1"))
        times, reasons = [], []
        for completion in completions:
            start = time.perf_counter()
            reasons.append(verifier.verify(completion, Task("h", "", "3")).reason)
            times.append(time.perf_counter() - start)
        return times, reasons
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MATH-500 test.jsonl")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--limit", type=float, default=5.0, help="our time limit per check (s)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per variant (median reported)")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    items = pairs(args.data)
    print(f"{len(items)} pairs from {args.data}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    throughput(items, args.workers, args.rounds)
    hostile(args.limit)


#: The two plain baselines: in this long-lived process, and in a fresh one per round.
PLAIN, PLAIN_FRESH = "plain", "plain, fresh process"


def throughput(items: list[tuple[str, str]], worker_counts: list[int], rounds: int) -> None:
    # Rounds rotate the order of the variants, so a change in the machine's load mid-run does not
    # favour one of them; each figure is the median over the rounds. CPU seconds (this process
    # plus the workers) measure the cost per core even when other jobs compete for the cores.
    variants: list[str | int] = [PLAIN, PLAIN_FRESH, *worker_counts]
    wall: dict[str | int, list[float]] = {v: [] for v in variants}
    cpu: dict[str | int, list[float]] = {v: [] for v in variants}
    startups: dict[str | int, list[float]] = {v: [] for v in variants}
    verdicts: dict[str | int, list[bool]] = {}
    for r in range(rounds):
        for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
            if variant == PLAIN:
                seconds, cpu_s, verdicts[variant] = run_plain(items)
            elif variant == PLAIN_FRESH:
                seconds, cpu_s, verdicts[variant] = run_plain_fresh(items)
            else:
                seconds, cpu_s, startup, verdicts[variant] = run_ours(items, variant)
                startups[variant].append(startup)
            wall[variant].append(seconds)
            cpu[variant].append(cpu_s)
    n = len(items)
    plain_wall, plain_cpu = statistics.median(wall[PLAIN]), statistics.median(cpu[PLAIN])
    print(f"{rounds} rounds; figures are medians; ratios are to plain math-verify in this process")
    print("| verifier | workers | verdicts/s | ratio to plain | verdicts per CPU-second | ratio to plain "
          "| start-up (s) | agrees with plain |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        name = {PLAIN: "plain math-verify (in-process)", PLAIN_FRESH: "plain math-verify (fresh process)"}.get(
            variant, "rewardgym MathVerifier")
        v_wall, v_cpu = statistics.median(wall[variant]), statistics.median(cpu[variant])
        startup = f"{statistics.median(startups[variant]):.2f}" if startups[variant] else "-"
        agree = sum(a == b for a, b in zip(verdicts[variant], verdicts[PLAIN]))
        print(f"| {name} | {variant if isinstance(variant, int) else 1} | {n / v_wall:.0f} "
              f"| {plain_wall / v_wall:.2f} | {n / v_cpu:.0f} | {plain_cpu / v_cpu:.2f} | {startup} | {agree}/{n} |")
    for workers in worker_counts:
        if workers > 1:
            print(f"\nControl: a pure-Python CPU loop ran {machine_scaling(workers):.2f}x faster on {workers} "
                  "processes than on 1 (the scaling this machine allowed during the run).")


def hostile(limit: float) -> None:
    print(f"\nHostile answers (gold 3): {HOSTILE}")
    plain_times = slowest_plain(HOSTILE)
    ours_times, reasons = slowest_ours(HOSTILE, limit)
    print("| answer | plain math-verify (s) | rewardgym (s) | rewardgym reason |")
    print("|---|---|---|---|")
    for answer, p, o, r in zip(HOSTILE, plain_times, ours_times, reasons):
        shown = f">{HANG_CAP:.0f} (killed)" if p >= HANG_CAP else f"{p:.2f}"
        print(f"| `{answer}` | {shown} | {o:.2f} | {r} |")
    over = sum(t > limit + 0.5 for t in ours_times)
    print(f"\nrewardgym calls over the {limit:g} s limit (+0.5 s kill overhead): {over}")
    print(f"plain math-verify called from a thread: {plain_in_thread()}")


def plain_in_thread() -> str:
    """What plain math-verify does off the main thread (its timeout is signal.alarm)."""
    outcome: list[str] = []

    def target() -> None:
        try:
            verdict = plain("1", "$\\boxed{1}$")
            outcome.append(f"returned {verdict}")
        except Exception as exc:  # noqa: BLE001 - reporting whatever it raises
            outcome.append(f"raised {type(exc).__name__}")

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return outcome[0]


if __name__ == "__main__":
    main()
