"""Countdown generation and scoring rates: rewardgym vs reasoning-gym, same config, one run.

Run (reasoning-gym is installed only for this benchmark):
    python3 -m venv /tmp/rg && /tmp/rg/bin/pip install -q reasoning-gym -e . \
      && /tmp/rg/bin/python benchmarks/countdown/bench.py
"""

from __future__ import annotations

import argparse
import importlib.metadata
import multiprocessing as mp
import time

from reasoning_gym.games.countdown import CountdownConfig, CountdownDataset

from rewardgym.core import Task
from rewardgym.envs.countdown import CountdownEnv
from rewardgym.verifiers.countdown import CountdownVerifier

# reasoning-gym's default countdown config, mirrored on our side.
CONFIG = dict(min_numbers=4, max_numbers=6, min_value=1, max_value=100, min_target=100, max_target=999)


def rate(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def _peer_score(queue, answer, entry):
    queue.put(CountdownDataset(CountdownConfig(size=1, seed=0)).score_answer(answer, entry))


def peer_score_bounded(answer: str, entry: dict, limit: float = 10.0) -> str:
    """reasoning-gym's scorer in a child process, killed after ``limit`` seconds."""
    queue = mp.Queue()
    proc = mp.Process(target=_peer_score, args=(queue, answer, entry))
    start = time.perf_counter()
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return f"hung, killed after {limit:.0f}s"
    return f"{queue.get()} in {time.perf_counter() - start:.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer-tasks", type=int, default=200)
    parser.add_argument("--our-tasks", type=int, default=20000)
    args = parser.parse_args()

    print(f"reasoning-gym {importlib.metadata.version('reasoning-gym')}; config {CONFIG}")
    peer = CountdownDataset(CountdownConfig(**CONFIG, seed=42, size=args.peer_tasks))
    peer_gen = rate(lambda i: peer[i], range(args.peer_tasks))
    ours = CountdownEnv(num_numbers=[CONFIG["min_numbers"], CONFIG["max_numbers"]], min_number=CONFIG["min_value"],
                        max_number=CONFIG["max_value"], min_target=CONFIG["min_target"], max_target=CONFIG["max_target"])
    our_gen = rate(ours.generate, range(args.our_tasks))
    print(f"\ngeneration  reasoning-gym {peer_gen:10.1f} tasks/s   rewardgym {our_gen:10.1f} tasks/s   "
          f"ratio {our_gen / peer_gen:6.1f}x")

    # Scoring the same answers: the peer's gold solutions plus a wrong variant of each.
    entries = [peer[i] for i in range(args.peer_tasks)]
    cases = [(e["answer"], e) for e in entries] + [(e["answer"] + " + 1", e) for e in entries]
    tasks = {id(e): Task(id=str(i), prompt="", answer=e["metadata"]["target"],
                         meta={"numbers": e["metadata"]["numbers"], "target": e["metadata"]["target"]})
             for i, e in enumerate(entries)}
    verifier = CountdownVerifier()
    peer_rate = rate(lambda c: peer.score_answer(c[0], c[1]), cases * 5)
    our_rate = rate(lambda c: verifier.verify(f"<think>.</think><answer>{c[0]}</answer>", tasks[id(c[1])]), cases * 50)
    bare_rate = rate(lambda c: verifier.check(c[0], tasks[id(c[1])].meta), cases * 50)
    agree = sum((peer.score_answer(a, e) == 1.0) == verifier.check(a, tasks[id(e)].meta).correct for a, e in cases)
    print(f"scoring     reasoning-gym {peer_rate:10.1f} answers/s rewardgym {our_rate:10.1f} answers/s "
          f"ratio {our_rate / peer_rate:6.1f}x  (with <answer> extraction)")
    print(f"            {'':24} rewardgym {bare_rate:10.1f} answers/s ratio {bare_rate / peer_rate:6.1f}x  "
          "(bare expression, as the peer receives it)")
    print(f"agreement on correct/incorrect: {agree}/{len(cases)}")

    entry = entries[0]
    numbers, target = entry["metadata"]["numbers"], entry["metadata"]["target"]
    gold = entry["answer"]
    total = " + ".join(str(n) for n in numbers)
    gap = target - sum(numbers)
    sign = "+" if gap >= 0 else "-"
    holes = {  # each uses every number once plus a constant that is not one of them
        "constant smuggled as 'Ne0'": f"{total} {sign} {abs(gap)}e0",
        "constant smuggled as hex": f"{total} {sign} {hex(abs(gap))}",
        "power tower": f"{gold} + 0*9**9**9",
        "caret as power": f"{gold} + 0*2^3",
    }
    print(f"\nhostile answers for numbers {numbers}, target {target} (peer run in a child process, 10 s limit):")
    for name, answer in holes.items():
        ours_v = verifier.check(answer, tasks[id(entry)].meta)
        print(f"  {name:28} peer: {peer_score_bounded(answer, entry):28} rewardgym: {ours_v.reward} ({ours_v.reason})")


if __name__ == "__main__":
    main()
