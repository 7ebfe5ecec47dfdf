"""Procedural math problems with exact answers, generated with sympy.

Each skill is a pure function ``(rng, level) -> Problem``: the same ``random.Random`` state and
level give the same problem on every machine. ``level`` runs from 1 (small integers, one step)
to 5 (larger numbers, rational answers, more terms). Answers are LaTeX strings that the math
verifier compares by value, so any equivalent form a model writes is accepted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

X, Y = sp.symbols("x y")
LEVELS = range(1, 6)


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str
    solution: str


def _nonzero(rng: random.Random, bound: int) -> int:
    value = 0
    while value == 0:
        value = rng.randint(-bound, bound)
    return value


def _value(rng: random.Random, level: int) -> sp.Rational:
    """An integer at low levels, a simple fraction from level 4 on."""
    bound = 3 + 3 * level
    if level >= 4 and rng.random() < 0.5:
        return sp.Rational(_nonzero(rng, bound), rng.randint(2, level + 1))
    return sp.Integer(rng.randint(-bound, bound))


def _poly(rng: random.Random, degree: int, bound: int) -> sp.Expr:
    coefficients = [rng.randint(-bound, bound) for _ in range(degree)] + [_nonzero(rng, bound)]
    return sum((c * X**k for k, c in enumerate(coefficients)), sp.Integer(0))


def linear(rng: random.Random, level: int) -> Problem:
    root = _value(rng, level)
    a = _nonzero(rng, 2 + 2 * level)
    d = _nonzero(rng, 2 + 2 * level) if level >= 2 else 0
    while d == a:
        d = _nonzero(rng, 2 + 2 * level)
    b = rng.randint(-5 * level, 5 * level)
    e = (a - d) * root + b  # so that a*root + b = d*root + e
    lhs, rhs = a * X + b, d * X + e
    return Problem(f"Solve for $x$: ${sp.latex(lhs)} = {sp.latex(rhs)}$.", sp.latex(root),
                   f"Collect terms: ${sp.latex(a - d)}x = {sp.latex(e - b)}$, so $x = {sp.latex(root)}$.")


def quadratic(rng: random.Random, level: int) -> Problem:
    r1, r2 = _value(rng, level), _value(rng, level)
    k = _nonzero(rng, level)
    expr = sp.expand(k * (X - r1) * (X - r2) * (sp.lcm(sp.denom(r1), sp.denom(r2))))
    roots = sorted({r1, r2})
    answer = ", ".join(sp.latex(r) for r in roots)
    return Problem(f"Find all real solutions of ${sp.latex(expr)} = 0$. List them separated by commas.",
                   answer, f"The left side factors as ${sp.latex(sp.factor(expr))}$, so $x \\in \\{{{answer}\\}}$.")


def system(rng: random.Random, level: int) -> Problem:
    x, y = _value(rng, min(level, 3)), _value(rng, min(level, 3))
    bound = 2 + level
    while True:
        a1, b1, a2, b2 = (_nonzero(rng, bound) for _ in range(4))
        if a1 * b2 - a2 * b1:
            break
    eq1, eq2 = sp.Eq(a1 * X + b1 * Y, a1 * x + b1 * y), sp.Eq(a2 * X + b2 * Y, a2 * x + b2 * y)
    answer = f"({sp.latex(x)}, {sp.latex(y)})"
    return Problem(f"Solve the system ${sp.latex(eq1)}$ and ${sp.latex(eq2)}$. Give the answer as $(x, y)$.",
                   answer, f"Eliminating one unknown gives $x = {sp.latex(x)}$ and $y = {sp.latex(y)}$.")


def derivative(rng: random.Random, level: int) -> Problem:
    f = _poly(rng, 1 + level, 2 + level)
    if level >= 3:
        f = sp.Mul(f, _poly(rng, 1, 3), evaluate=False)
    point = rng.randint(-2, 2 + level // 2)
    slope = sp.diff(f, X)
    value = slope.subs(X, point)
    return Problem(f"Let $f(x) = {sp.latex(f)}$. Compute $f'({point})$.", sp.latex(value),
                   f"$f'(x) = {sp.latex(sp.expand(slope))}$, so $f'({point}) = {sp.latex(value)}$.")


def integral(rng: random.Random, level: int) -> Problem:
    f = _poly(rng, level, 2 + level)
    a = rng.randint(-2, 2)
    b = a + rng.randint(1, 1 + level)
    antiderivative = sp.Poly(f, X).integrate().as_expr()  # exact, and far faster than sp.integrate
    value = antiderivative.subs(X, b) - antiderivative.subs(X, a)
    return Problem(f"Evaluate $\\int_{{{a}}}^{{{b}}} \\left({sp.latex(f)}\\right)\\,dx$.", sp.latex(value),
                   f"An antiderivative is ${sp.latex(antiderivative)}$; the difference of its values "
                   f"at {b} and {a} is ${sp.latex(value)}$.")


def simplify(rng: random.Random, level: int) -> Problem:
    """A rational expression with a removable singularity at ``c``; asking for the value of the
    simplified form at ``c`` makes copying the expression back worthless."""
    bound = 3 + level
    c = rng.randint(-bound, bound)
    keep = _poly(rng, 1 + level // 3, 2 + level)
    rest = X - rng.choice([r for r in range(-bound, bound + 1) if r != c]) if level >= 3 else sp.Integer(1)
    numerator, denominator = sp.expand(keep * (X - c)), sp.expand((X - c) * rest)
    reduced = sp.expand(keep) / rest
    value = reduced.subs(X, c)
    return Problem(f"The expression $\\frac{{{sp.latex(numerator)}}}{{{sp.latex(denominator)}}}$ is undefined at "
                   f"$x = {c}$. Simplify it and give the value of the simplified expression at $x = {c}$.",
                   sp.latex(value), f"Cancel the common factor ${sp.latex(X - c)}$ to get ${sp.latex(reduced)}$, "
                   f"which is ${sp.latex(value)}$ at $x = {c}$.")


def modular(rng: random.Random, level: int) -> Problem:
    base = rng.randint(2, 10 * level + 10)
    exponent = rng.randint(2, 10 ** (level + 1))
    modulus = rng.randint(3, 20 * level + 10)
    value = pow(base, exponent, modulus)
    return Problem(f"What is the remainder when ${base}^{{{exponent}}}$ is divided by ${modulus}$?", str(value),
                   f"Reduce by repeated squaring modulo {modulus}: the remainder is {value}.")


def fractions(rng: random.Random, level: int) -> Problem:
    def term() -> sp.Rational:
        return sp.Rational(rng.randint(1, 3 + 2 * level), rng.randint(2, 4 + 3 * level))

    value = term()
    text = sp.latex(value)
    for _ in range(level):
        sign, part = rng.choice((1, -1)), term()
        text += f" {'+' if sign > 0 else '-'} {sp.latex(part)}"
        value += sign * part
    return Problem(f"Compute ${text}$. Give the answer as a fraction in lowest terms.", sp.latex(value),
                   f"Over a common denominator the result is ${sp.latex(value)}$.")


SKILLS: dict[str, Callable[[random.Random, int], Problem]] = {
    "linear": linear, "quadratic": quadratic, "system": system, "derivative": derivative,
    "integral": integral, "simplify": simplify, "modular": modular, "fractions": fractions,
}
