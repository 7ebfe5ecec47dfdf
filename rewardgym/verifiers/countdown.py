"""Countdown check: does the answer's expression reach the target using exactly the given numbers?

Accepted answers: integer literals, binary ``+ - * /``, unary minus and parentheses, optionally
followed by ``= <target>``. Unary minus adds no power (any negated expression with a positive value
can be rewritten without it) and reasoning-gym's own reference solutions use it, so it is allowed.
Unary plus, powers, floor division, floats, exponents, hex, names and calls are rejected
(``29e0``, ``0x1d``, ``__import__(...)``, ``2**3``, ``2^3``, ``+5``). Arithmetic is exact
(integers, fractions once a division is inexact), so ``7/2*2`` is 7. Every given number must be used exactly once unless the task's
``use_all`` is false, in which case each may be used at most once. Model text is never
evaluated: it is parsed with ``ast`` after a character whitelist and a length bound, and every
intermediate value is bounded, so any input returns in microseconds.

Reasons beyond the shared ones: ``wrong_numbers`` (literals do not match the given numbers),
``division_by_zero``, ``too_large`` (an intermediate exceeded the magnitude bound). A wrong value
with the right numbers reports its ``value`` and its ``distance`` from the target (for
``rewardgym.shaping.Closeness``).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

from ..core.answer import extract_answer
from ..core.types import FORMAT_ERROR, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier

MAX_EXPRESSION_CHARS = 256
MAX_MAGNITUDE = 10**18
_ALLOWED = re.compile(r"[0-9+\-*/() \t\n]*")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class _Reject(Exception):
    def __init__(self, reason: str, why: str):
        super().__init__(why)
        self.reason, self.why = reason, why


def _value(node: ast.AST, literals: list[int], operators: str) -> int | Fraction:
    """Exact value of an allowed node; ints stay ints (fast) until a division is inexact."""
    kind = type(node)
    if kind is ast.BinOp:
        symbol = _OPS.get(type(node.op))
        if symbol is None or symbol not in operators:
            raise _Reject(FORMAT_ERROR, f"operator {type(node.op).__name__} not allowed")
        left = _value(node.left, literals, operators)
        right = _value(node.right, literals, operators)
        if symbol == "+":
            out = left + right
        elif symbol == "-":
            out = left - right
        elif symbol == "*":
            out = left * right
        elif right == 0:
            raise _Reject("division_by_zero", "division by zero")
        elif type(left) is int and type(right) is int and left % right == 0:
            out = left // right
        else:
            out = Fraction(left) / right
        if type(out) is Fraction:
            if out.denominator == 1:
                out = out.numerator
            elif abs(out.numerator) > MAX_MAGNITUDE or out.denominator > MAX_MAGNITUDE:
                raise _Reject("too_large", "intermediate value exceeds the magnitude bound")
        if type(out) is int and abs(out) > MAX_MAGNITUDE:
            raise _Reject("too_large", "intermediate value exceeds the magnitude bound")
        return out
    if kind is ast.Constant and type(node.value) is int:
        literals.append(node.value)
        return node.value
    if kind is ast.UnaryOp and type(node.op) is ast.USub:
        return -_value(node.operand, literals, operators)
    raise _Reject(FORMAT_ERROR, f"{type(node).__name__}{'' if kind is not ast.UnaryOp else ' ' + type(node.op).__name__} not allowed")


def evaluate(expression: str, operators: str = "+-*/") -> tuple[int | Fraction, list[int]]:
    """Exact value and literals of a countdown expression; raises _Reject when not allowed."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise _Reject(FORMAT_ERROR, f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if not _ALLOWED.fullmatch(expression):
        bad = next(c for c in expression if not _ALLOWED.fullmatch(c))
        raise _Reject(FORMAT_ERROR, f"character {bad!r} not allowed")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _Reject(FORMAT_ERROR, "not a valid expression") from None
    literals: list[int] = []
    return _value(tree.body, literals, operators), literals


class CountdownVerifier(Verifier):
    """Reward 1 for an expression that uses the task's numbers and equals its target, else 0."""

    time_limit = 0.5

    def verify(self, completion: str, task: Task) -> Verdict:
        found = extract_answer(self.clip(completion))
        if found.answer is None:
            return Verdict.wrong(found.reason)
        return self.check(found.answer, task.meta)

    def check(self, answer: str, meta: dict) -> Verdict:
        """Judge an expression (the content of the answer block) against numbers and target."""
        target, numbers = meta["target"], meta["numbers"]
        expression = answer.strip()
        if expression.count("=") > 1:
            return Verdict.wrong(FORMAT_ERROR, expression, why="more than one '='")
        if "=" in expression:
            expression, stated = (s.strip() for s in expression.split("="))
            if stated != str(target):
                return Verdict.wrong(FORMAT_ERROR, expression, why=f"right-hand side {stated[:20]!r} is not the target")
        try:
            value, literals = evaluate(expression, meta.get("operators", "+-*/"))
        except _Reject as rej:
            return Verdict.wrong(rej.reason, expression, why=rej.why)
        used, given = Counter(literals), Counter(numbers)
        if used != given if meta.get("use_all", True) else used - given:
            return Verdict.wrong("wrong_numbers", expression, used=sorted(literals))
        if value != target:
            return Verdict.wrong(WRONG_ANSWER, expression, value=str(value), distance=float(abs(value - target)))
        return Verdict.right(expression)
