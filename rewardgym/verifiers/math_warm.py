"""What warms a process for math checks; run by the math pool's fork server on start-up (see
``math_preload``), before it forks any worker.

Why: math-verify's first checks of each kind of answer are slow. LaTeX goes through an ANTLR
parser that builds its prediction tables lazily, input shape by input shape, and sympy imports
whole subpackages (units, combinatorics, set handlers) the first time a path needs them. A
fresh worker that pays this on its first few hundred checks ran about 0.8x as fast as a
long-lived process. So one check of each common answer form below runs once, in the fork
server: every worker, replacements for killed ones included, starts warm, and the cost never
falls on a caller. The pairs mix equal and unequal answers, so both outcomes of the
comparison are exercised. A verdict does not depend on this warmth (the parse tables are a
cache of the same grammar), only its speed.
"""

import contextlib
import gc
import logging

from .math import judge
from .math_sll import install as install_two_stage_parsing

#: (gold, answer) pairs covering the answer forms of MATH-style datasets.
WARM_UP_PAIRS = [
    # numbers, fractions, radicals, separators
    ("\\frac{1}{2}", "0.5"), ("\\dfrac{3}{4}", "3/4"), ("-7", "7"), ("2.5", "\\frac{5}{2}"), ("1{,}000", "1000"),
    ("\\sqrt{2}", "1.4142"), ("2\\sqrt{3}", "\\sqrt{12}"), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}"),
    # pi, angles and degrees
    ("3\\pi", "\\pi"), ("\\frac{5\\pi}{4}", "225^\\circ"), ("30^\\circ", "30"),
    # intervals, unions, inequalities
    ("\\left[ \\frac{\\pi^2}{8}, 2 \\right)", "[\\pi/8, 2)"), ("(-\\infty, 0) \\cup (1, 2]", "x \\in (1,2]"),
    ("x \\in [-2,7]", "[-2, 7]"), ("x > 3", "(3, \\infty)"),
    # tuples, sets, lists, matrices
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"), ("(-2,1)", "(1,-2)"),
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt5"), ("\\{1, 2\\}", "\\{2, 1, 3\\}"),
    ("\\begin{pmatrix} 1/3 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix} -1 & 2 \\\\ 0 & 1 \\end{pmatrix}"),
    # bases, complex numbers, polynomials, equations, functions
    ("4210_{5}", "4210_5"), ("1+2i", "2i+1"), ("-\\frac{3}{5} + \\frac{4}{5}i", "i"),
    ("6r^2-4r-24", "2(3r^2-2r-12)"), ("(a+5)(b+2)", "ab+2a+5b+10"), ("x^3 - x + 1", "4"),
    ("y = 2x + 1", "2x+1"), ("\\cot x", "\\frac{\\cos x}{\\sin x}"), ("\\log_2 8", "\\ln 3 + e^{2}"),
    ("\\binom{5}{2}", "5!"), ("a = 2, b = 3", "2, 3"), ("p - q", "\\frac{14}{3}"),
    # percentages, units, currency, text and multiple choice
    ("10\\%", "0.1"), ("5 \\text{ cm}", "\\$5"), ("\\text{east}", "\\text{(E)}"), ("\\text{(C)}", "C"),
]


def warm_up() -> None:
    """Two-stage parsing on, math-verify's 'timeout disabled' warning off (the pool is the
    timeout), one check per pair; failures are ignored, as they must not take the fork server
    down (workers would then warm up as they go). Last, everything built so far is moved out of
    the garbage collector's sight: it lives as long as the process, and forked workers then
    neither rescan it nor copy its pages by writing collector marks into them."""
    install_two_stage_parsing()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    for gold, answer in WARM_UP_PAIRS:
        with contextlib.suppress(Exception):
            judge(gold, answer)
    gc.freeze()
