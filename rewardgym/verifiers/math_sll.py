"""Two-stage parsing for math-verify's LaTeX parser: ANTLR's fast SLL prediction first, the full
LL prediction only when SLL reports a syntax error. Installed by the fork server that math
workers come from (``math_warm.warm_up``), never in the caller's process.

Why: latex2sympy (beneath math-verify) parses with ANTLR in LL mode, whose full-context
prediction alone took 28% of the time of checking MATH-500 answers. ANTLR documents that
in SLL mode "the parser will either return a correct parse tree (i.e. the same parse tree that
would be returned with the LL prediction mode), or it will report a syntax error" (see
``antlr4.atn.PredictionMode``). So a parse that SLL completes is the LL parse, and any lexer or
parser error in the SLL attempt discards it and reruns latex2sympy's own, unchanged LL parse:
outcomes (trees, converted expressions, failures) are the same as without this module, only
sooner. Some inputs need the rerun (``x^3+3x-6`` is not SLL in this grammar).

latex2sympy's conversion may parse sub-expressions again (nested ``parse`` calls); each call
makes its own two-stage attempt, so a nested rerun never redoes the outer parse.
"""

from __future__ import annotations

from typing import Any


class _SLLFailed(Exception):
    """A syntax error in the SLL attempt: not necessarily an error in the input."""


def install() -> bool:
    """Patch latex2sympy for two-stage parsing; False when already done, or when latex2sympy has
    no ``_Latex2Sympy.create_parser``/``parse`` (another version: then it parses as it always did)."""
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from antlr4.error.ErrorListener import ErrorListener
        from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    except ImportError:
        return False
    original_create, original_parse = (getattr(_Latex2Sympy, name, None) for name in ("create_parser", "parse"))
    if original_create is None or original_parse is None or getattr(original_parse, "two_stage", False):
        return False

    class Bail(ErrorListener):
        def syntaxError(self, *args: Any) -> None:
            raise _SLLFailed

    def create_parser(self: Any, latex_str: str) -> Any:
        parser = original_create(self, latex_str)
        if self.__dict__.get("_sll_attempt"):
            parser._interp.predictionMode = PredictionMode.SLL
            for recognizer in (parser, parser.getTokenStream().tokenSource):  # the parser and its lexer
                recognizer.removeErrorListeners()
                recognizer.addErrorListener(Bail())
        return parser

    def parse(self: Any, latex_str: str) -> Any:
        outer = self.__dict__.get("_sll_attempt", False)
        try:
            self._sll_attempt = True
            try:
                return original_parse(self, latex_str)
            except _SLLFailed:
                self._sll_attempt = False
                return original_parse(self, latex_str)
        finally:
            self._sll_attempt = outer

    parse.two_stage = True  # type: ignore[attr-defined]
    _Latex2Sympy.create_parser, _Latex2Sympy.parse = create_parser, parse
    return True
