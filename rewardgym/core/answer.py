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
from collections.abc import Iterable
from dataclasses import dataclass

from .types import AMBIGUOUS, NO_ANSWER, OK

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
_OPEN, _CLOSE = "<answer>", "</answer>"
_TAGS = ("<think>", "</think>", _OPEN, _CLOSE)

# Everything here is linear in the text length: completions can be megabytes of hostile text,
# and a backtracking regex over unclosed tags is quadratic.


@dataclass(frozen=True)
class Extraction:
    """What the rule found: the answer text (stripped) or None, and a Verdict reason code."""

    answer: str | None
    reason: str
    candidates: int = 0


def _decide(found: Iterable[str], count: int) -> Extraction:
    """The rule on ``count`` candidates, stopping at the second distinct one (so hostile text
    with thousands of nested boxes is never copied out in full)."""
    if not count:
        return Extraction(None, NO_ANSWER, 0)
    first = last = None
    for candidate in found:
        last = candidate.strip()
        if first is None:
            first = last
        elif last != first:
            return Extraction(None, AMBIGUOUS, count)
    return Extraction(last, OK, count)


def _answer_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every ``<answer>`` block's content; linear time (a lazy regex is
    quadratic on text with many unclosed tags)."""
    spans, pos = [], 0
    while (start := text.find("<answer>", pos)) >= 0:
        end = text.find("</answer>", start + 8)
        if end < 0:
            break
        spans.append((start + 8, end))
        pos = end + 9
    return spans


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every ``\\boxed{...}`` content with balanced braces, in order of
    appearance; one pass over the braces, so deep nesting stays linear."""
    opens = {m.end() for m in _BOXED.finditer(text)}
    if not opens:
        return []
    spans, stack, depth = [], [], 0
    for brace in _BRACE.finditer(text):
        if brace.group() == "{":
            depth += 1
            if brace.end() in opens:
                stack.append((brace.end(), depth))
        else:
            if stack and stack[-1][1] == depth:
                spans.append((stack.pop()[0], brace.start()))
            depth -= 1
    return sorted(spans)


def answer_blocks(text: str) -> list[str]:
    return [text[a:b] for a, b in _answer_spans(text)]


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order of appearance."""
    return [text[a:b] for a, b in _boxed_spans(text)]


def extract_answer(text: str, *, boxed: bool = False) -> Extraction:
    """Apply the shared rule; with ``boxed=True`` fall back to ``\\boxed{}`` (math)."""
    if not isinstance(text, str):
        return Extraction(None, NO_ANSWER)
    spans = _answer_spans(text)
    if not spans and boxed:
        spans = _boxed_spans(text)
    return _decide((text[a:b] for a, b in spans), len(spans))


def follows_r1_template(text: str, *, think_prefilled: bool = False) -> bool:
    """True when the text is exactly ``<think>...</think><answer>...</answer>`` (whitespace
    around the blocks allowed), each block non-empty and no stray tags inside.

    With ``think_prefilled`` the prompt already ended in ``<think>``, so the completion starts
    inside the thinking block.
    """
    if not isinstance(text, str):
        return False
    text = ("<think>" + text if think_prefilled else text).strip()
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    a, b, c, d = (text.index(tag) for tag in _TAGS)
    if not (a == 0 and a < b < c < d and d + len(_CLOSE) == len(text)):
        return False
    think, answer = text[a + len("<think>"):b], text[c + len(_OPEN):d]
    return bool(think.strip()) and bool(answer.strip()) and not text[b + len("</think>"):c].strip()
