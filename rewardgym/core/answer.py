"""The one answer-extraction rule every environment shares.

Rule: the answer is the content of the last ``<answer>...</answer>`` block. Math environments
also accept the last ``\\boxed{...}`` when there is no answer block. A completion that gives
several answer blocks (or, when boxes are used, several boxes) with different contents is
*ambiguous* and scores nothing: hedging between answers must never be rewarded. Repeating
the same answer is fine. Tags are case-sensitive and must be closed; an unclosed
``<answer>`` gives no answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import AMBIGUOUS, NO_ANSWER, OK

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_R1 = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)
_TAG = re.compile(r"</?(?:think|answer)>")


@dataclass(frozen=True)
class Extraction:
    """What the rule found: the answer text (stripped) or None, and a Verdict reason code."""

    answer: str | None
    reason: str
    candidates: int = 0


def _decide(found: list[str]) -> Extraction:
    if not found:
        return Extraction(None, NO_ANSWER, 0)
    distinct = {c.strip() for c in found}
    if len(distinct) > 1:
        return Extraction(None, AMBIGUOUS, len(found))
    return Extraction(found[-1].strip(), OK, len(found))


def answer_blocks(text: str) -> list[str]:
    return _ANSWER.findall(text)


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order of appearance."""
    out = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def extract_answer(text: str, *, boxed: bool = False) -> Extraction:
    """Apply the shared rule; with ``boxed=True`` fall back to ``\\boxed{}`` (math)."""
    if not isinstance(text, str):
        return Extraction(None, NO_ANSWER)
    found = answer_blocks(text)
    if not found and boxed:
        found = boxed_contents(text)
    return _decide(found)


def follows_r1_template(text: str, *, think_prefilled: bool = False) -> bool:
    """True when the text is exactly ``<think>...</think><answer>...</answer>`` (whitespace
    around the blocks allowed), each block non-empty and no stray tags inside.

    With ``think_prefilled`` the prompt already ended in ``<think>``, so the completion starts
    inside the thinking block.
    """
    if not isinstance(text, str):
        return False
    if think_prefilled:
        text = "<think>" + text
    m = _R1.fullmatch(text)
    if not m:
        return False
    think, answer = m.group("think"), m.group("answer")
    return bool(think.strip()) and bool(answer.strip()) and not _TAG.search(think + answer)
