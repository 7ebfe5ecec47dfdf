"""Format checks: is the completion in the shape the task asked for?

Three kinds, chosen by the task's ``meta["format"]``:

``r1``
    ``<think>...</think><answer>...</answer>`` and nothing else (see core.answer).
``json_schema``
    the answer block holds one JSON value that validates against the task's schema
    (``task.answer``), checked with the ``jsonschema`` library (Draft 2020-12).
``function_call``
    the answer block holds ``{"name": ..., "arguments": {...}}`` naming one of the task's
    tools with arguments that validate against that tool's parameter schema: reward 0.5.
    When it is also the call the request asked for (``task.answer``), reward 1.0.

Reasons beyond the shared ones: ``invalid_json`` (not parseable), ``schema_violation``
(parses but does not validate; ``details["error"]`` says where), ``unknown_tool``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..core.answer import extract_answer, follows_r1_template
from ..core.types import FORMAT_ERROR, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier

MAX_JSON_CHARS = 20_000


def parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, why). Bounded: length is capped, deep nesting and huge ints fail cleanly."""
    if len(text) > MAX_JSON_CHARS:
        return None, f"longer than {MAX_JSON_CHARS} characters"
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, str(exc)[:200]


def schema_error(value: Any, schema: dict) -> str | None:
    """The first validation error (path and message), or None when the value is valid."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"[:300]


class FormatVerifier(Verifier):
    """Reward for following the requested output format (see module docstring)."""

    time_limit = 0.5

    def verify(self, completion: str, task: Task) -> Verdict:
        completion = self.clip(completion)
        kind = task.meta.get("format")
        if kind == "r1":
            found = extract_answer(completion)
            if follows_r1_template(completion):
                return Verdict.right(found.answer)
            return Verdict.wrong(FORMAT_ERROR, found.answer, why="not <think>...</think><answer>...</answer>")
        found = extract_answer(completion)
        if found.answer is None:
            return Verdict.wrong(found.reason)
        value, why = parse_json(found.answer)
        if why is not None:
            return Verdict.wrong("invalid_json", None, why=why)
        if kind == "json_schema":
            error = schema_error(value, task.answer)
            return Verdict.right(value) if error is None else Verdict.wrong("schema_violation", value, error=error)
        if kind == "function_call":
            return self._call(value, task)
        raise ValueError(f"task {task.id}: meta['format'] must be r1, json_schema or function_call, got {kind!r}")

    def _call(self, value: Any, task: Task) -> Verdict:
        shape = {"type": "object", "required": ["name", "arguments"], "additionalProperties": False,
                 "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}}}
        error = schema_error(value, shape)
        if error is not None:
            return Verdict.wrong("schema_violation", value, error=error)
        tools = {tool["name"]: tool for tool in task.meta["tools"]}
        if value["name"] not in tools:
            return Verdict.wrong("unknown_tool", value, tools=sorted(tools))
        error = schema_error(value["arguments"], tools[value["name"]]["parameters"])
        if error is not None:
            return Verdict.wrong("schema_violation", value, error=error)
        if value != task.answer:
            return Verdict(reward=0.5, correct=False, parsed=value, reason=WRONG_ANSWER,
                           details={"why": "well-formed call, but not the one requested"})
        return Verdict.right(value)
