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

_OPEN, _CLOSE = "<answer>", "</answer>"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TAGS = ("<think>", "</think>", _OPEN, _CLOSE)

# Everything here is linear in the text length: completions can be megabytes of hostile text,
# and a backtracking regex over unclosed tags is quadratic.


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
    """Contents of each ``<answer>...</answer>``, pairing every opening tag with the next closing one."""
    blocks, pos = [], 0
    while (start := text.find(_OPEN, pos)) != -1:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end == -1:
            break
        blocks.append(text[start + len(_OPEN):end])
        pos = end + len(_CLOSE)
    return blocks


def _matching_braces(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its ``}``, for the braces that close."""
    stack, pairs = [], {}
    for i, c in enumerate(text):
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order of appearance."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return []
    pairs = _matching_braces(text)
    return [text[m.end():pairs[m.end() - 1]] for m in matches if m.end() - 1 in pairs]


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
    text = ("<think>" + text if think_prefilled else text).strip()
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    a, b, c, d = (text.index(tag) for tag in _TAGS)
    if not (a == 0 and a < b < c < d and d + len(_CLOSE) == len(text)):
        return False
    think, answer = text[a + len("<think>"):b], text[c + len(_OPEN):d]
    return bool(think.strip()) and bool(answer.strip()) and not text[b + len("</think>"):c].strip()
