"""Countdown (the TinyZero / Mini-R1 task): combine the given numbers with arithmetic to hit a target.

Tasks are built backwards from a random solution, so every task is solvable and carries a
reference expression. The generator draws numbers, folds them pairwise with random operators
while every intermediate stays a positive integer (exact division only), and keeps the result
when it lands in the target range. It uses only ``random.Random(seed)``, so a seed gives the
same task in every process whatever PYTHONHASHSEED is.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from ..core.env import TextEnv
from ..core.types import Task

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM = 3
MAX_ATTEMPTS = 10_000


def _combine(a: tuple[int, str, int], b: tuple[int, str, int], op: str) -> tuple[int, str, int] | None:
    """Fold two (value, text, precedence) terms with ``op``; None if the result is not a positive int."""
    (x, xs, xp), (y, ys, yp) = a, b
    if op == "+":
        value = x + y
    elif op == "-":
        value = x - y
    elif op == "*":
        value = x * y
    else:
        if x % y:
            return None
        value = x // y
    if value <= 0:
        return None
    prec = _PRECEDENCE[op]
    left = f"({xs})" if xp < prec else xs
    right = f"({ys})" if yp < prec or (yp == prec and op in "-/") else ys
    return value, f"{left} {op} {right}", prec


def solve_backwards(rng: random.Random, numbers: list[int], operators: str,
                    target_range: tuple[int, int]) -> tuple[int, str] | None:
    """A random full expression over ``numbers`` with positive-integer intermediates whose value
    lies in ``target_range``, or None. The last fold picks among the operators that land in range,
    which keeps the acceptance rate high without a search."""
    rand, n_ops = rng.random, len(operators)
    pool = [(n, str(n), _ATOM) for n in numbers]
    while len(pool) > 2:
        a = pool.pop(int(rand() * len(pool)))
        b = pool.pop(int(rand() * len(pool)))
        start = int(rand() * n_ops)
        for k in range(n_ops):
            term = _combine(a, b, operators[(start + k) % n_ops])
            if term is not None:
                pool.append(term)
                break
        else:
            return None
    lo, hi = target_range
    a, b = pool if rand() < 0.5 else pool[::-1]
    finals = [t for op in operators if (t := _combine(a, b, op)) is not None and lo <= t[0] <= hi]
    if not finals:
        return None
    value, text, _ = finals[int(rand() * len(finals))]
    return value, text


def signed_sum(numbers: list[int], target: int, operators: str = "+-*/") -> str | None:
    """The target as a sum and difference of all the numbers, written larger numbers first and
    additions before subtractions (``70 + 48 + 1 - 53``), or None when no signs reach it.

    Why: most four-number tasks have such a solution, and one plain form per task is far easier for
    a small model to imitate than the generator's random expression trees (the cold start)."""
    if "+" not in operators and len(numbers) > 1:
        return None
    ordered = sorted(numbers, reverse=True)
    for signs in itertools.product([1, -1] if "-" in operators else [1], repeat=len(ordered)):
        if 1 in signs and sum(sign * n for sign, n in zip(signs, ordered)) == target:
            plus = [n for sign, n in zip(signs, ordered) if sign > 0]
            minus = [n for sign, n in zip(signs, ordered) if sign < 0]
            return " + ".join(map(str, plus)) + "".join(f" - {n}" for n in minus)
    return None


class CountdownEnv(TextEnv):
    """Procedural countdown tasks.

    Args:
      num_numbers: how many numbers (an int, or ``[low, high]`` for a random count).
      min_number, max_number: range of each number.
      min_target, max_target: range of the target.
      operators: the allowed operators, a subset of ``"+-*/"``.
      use_all: every number must be used exactly once (default); if false, at most once.
    """

    default_verifier = "rewardgym.verifiers.countdown:CountdownVerifier"
    #: Difficulty ladder for rewardgym.curriculum: more numbers, then larger targets.
    curriculum = [{"num_numbers": 3, "max_target": 100}, {"num_numbers": 4, "max_target": 100},
                  {"num_numbers": 5, "max_target": 500}, {"num_numbers": 6, "max_target": 999}]

    def __init__(self, *, num_numbers: int | list[int] = 4, min_number: int = 1, max_number: int = 100,
                 min_target: int = 1, max_target: int = 100, operators: str = "+-*/",
                 use_all: bool = True, **base: Any):
        super().__init__(**base)
        low, high = (num_numbers, num_numbers) if isinstance(num_numbers, int) else tuple(num_numbers)
        problems = []
        if not 2 <= low <= high <= 8:
            problems.append(f"num_numbers must be within 2..8, got {num_numbers!r}")
        if not 1 <= min_number <= max_number:
            problems.append(f"need 1 <= min_number <= max_number, got {min_number}, {max_number}")
        if not 1 <= min_target <= max_target:
            problems.append(f"need 1 <= min_target <= max_target, got {min_target}, {max_target}")
        if not operators or set(operators) - set("+-*/") or len(set(operators)) != len(operators):
            problems.append(f"operators must be distinct characters from '+-*/', got {operators!r}")
        if problems:
            raise ValueError("CountdownEnv: " + "; ".join(problems))
        self.count_range = (low, high)
        self.number_range = (min_number, max_number)
        self.target_range = (min_target, max_target)
        self.operators, self.use_all = operators, use_all

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        for _ in range(MAX_ATTEMPTS):
            numbers = [rng.randint(*self.number_range) for _ in range(rng.randint(*self.count_range))]
            for _ in range(4):
                found = solve_backwards(rng, numbers, self.operators, self.target_range)
                if found:
                    return self._build(seed, numbers, *found)
        raise RuntimeError(f"CountdownEnv: no solvable task found for seed {seed} in {MAX_ATTEMPTS} attempts; "
                           "widen the target range or allow more operators")

    def _build(self, seed: int, numbers: list[int], target: int, solution: str) -> Task:
        ops = ", ".join(self.operators)
        rule = "each number exactly once" if self.use_all else "each number at most once"
        question = (f"Using the numbers {numbers}, write an arithmetic expression that equals {target}. "
                    f"You may use {ops} and parentheses, {rule}. "
                    "Put only the expression inside <answer></answer>, for example <answer>(1 + 2) * 3</answer>.")
        return Task(id=f"countdown-{seed}", prompt=self.make_prompt(question), answer=target,
                    meta={"numbers": numbers, "target": target, "operators": self.operators,
                          "use_all": self.use_all, "solution": solution})

    def reference(self, task: Task) -> str:
        """The sum-and-difference form where one exists (``signed_sum``), else the generator's solution."""
        meta = task.meta
        solution = signed_sum(meta["numbers"], meta["target"], meta["operators"]) or meta["solution"]
        return f"<think>{solution} = {task.meta['target']}</think>\n<answer>{solution}</answer>"
