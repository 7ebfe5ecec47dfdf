"""Format environments: the reward is following a stated output format, not being right.

Three procedural families, each a pure function of the seed:

- ``R1TemplateEnv``: any short question; reward for ``<think>...</think><answer>...</answer>``.
- ``JSONSchemaEnv``: a generated JSON Schema; reward for a JSON answer that validates.
- ``FunctionCallEnv``: a set of tools and a request; reward for the right tool call.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

from ..core.env import TextEnv
from ..core.types import Task

_VERIFIER = "rewardgym.verifiers.format:FormatVerifier"
_WORDS = ("river", "cobalt", "lantern", "meadow", "harbor", "falcon", "quartz", "willow", "ember", "summit",
          "orchid", "delta", "canyon", "maple", "nebula", "pebble", "tundra", "violet", "zephyr", "amber")


class _FormatEnv(TextEnv):
    default_verifier = _VERIFIER
    curriculum = [{"difficulty": 1}, {"difficulty": 2}, {"difficulty": 3}]

    def __init__(self, *, difficulty: int = 1, **base: Any):
        super().__init__(**base)
        if difficulty not in (1, 2, 3):
            raise ValueError(f"{type(self).__name__}: difficulty must be 1, 2 or 3, got {difficulty!r}")
        self.difficulty = difficulty


class R1TemplateEnv(_FormatEnv):
    """Short questions; only the R1 think/answer shape is rewarded."""

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        kind = rng.randrange(3)
        if kind == 0:
            question, result = f"What is {a} + {b}?", str(a + b)
        elif kind == 1:
            word = rng.choice(_WORDS)
            question, result = f"Spell the word '{word}' backwards.", word[::-1]
        else:
            question, result = f"Is {a} greater than {b}? Answer yes or no.", "yes" if a > b else "no"
        question += (" Reason inside <think></think>, then give the result inside <answer></answer>, "
                     "and write nothing outside those two blocks.")
        return Task(id=f"r1-{seed}", prompt=self.make_prompt(question), answer=result,
                    meta={"format": "r1", "expected": result})

    def reference(self, task: Task) -> str:
        return f"<think>Working it out.</think>\n<answer>{task.meta['expected']}</answer>"


def _property(rng: random.Random, depth: int) -> tuple[dict[str, Any], Any]:
    """A random property schema and a value that satisfies it."""
    kind = rng.choice(("string", "integer", "number", "boolean", "enum", "array") + (("object",) if depth else ()))
    if kind == "string":
        lo = rng.randint(1, 5)
        hi = lo + rng.randint(0, 10)
        return {"type": "string", "minLength": lo, "maxLength": hi}, "".join(rng.choices(string.ascii_lowercase, k=lo))
    if kind == "integer":
        lo = rng.randint(-50, 50)
        hi = lo + rng.randint(0, 100)
        return {"type": "integer", "minimum": lo, "maximum": hi}, rng.randint(lo, hi)
    if kind == "number":
        return {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 0.5
    if kind == "boolean":
        return {"type": "boolean"}, rng.random() < 0.5
    if kind == "enum":
        options = rng.sample(_WORDS, 3)
        return {"enum": options}, rng.choice(options)
    if kind == "array":
        item, value = _property(rng, 0) if rng.random() < 0.3 else ({"type": "integer"}, rng.randint(0, 9))
        n = rng.randint(1, 3)
        return {"type": "array", "items": item, "minItems": n, "maxItems": n + 2}, [value] * n
    return _object(rng, depth - 1, rng.randint(1, 3))


def _object(rng: random.Random, depth: int, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    names = rng.sample(_WORDS, size)
    props, value = {}, {}
    for name in names:
        props[name], value[name] = _property(rng, depth)
    required = sorted(rng.sample(names, rng.randint(1, size)))
    schema = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    return schema, value


class JSONSchemaEnv(_FormatEnv):
    """A generated JSON Schema (more properties and nesting with difficulty)."""

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        schema, example = _object(rng, self.difficulty - 1, rng.randint(1 + self.difficulty, 2 + 2 * self.difficulty))
        question = ("Write a JSON object that validates against this JSON Schema (Draft 2020-12):\n"
                    f"{json.dumps(schema)}\n"
                    "Put only the JSON object inside <answer></answer>.")
        return Task(id=f"json-{seed}", prompt=self.make_prompt(question), answer=schema,
                    meta={"format": "json_schema", "example": example})

    def reference(self, task: Task) -> str:
        return f"<think>Fill every required field.</think>\n<answer>{json.dumps(task.meta['example'])}</answer>"


_TOOLS = (
    ("get_weather", "Current weather for a city.",
     {"city": ("enum", ["Paris", "Lagos", "Lima", "Osaka", "Oslo"]), "unit": ("enum", ["celsius", "fahrenheit"])},
     "What's the weather in {city}? Give it in {unit}."),
    ("book_table", "Reserve a restaurant table.",
     {"restaurant": ("enum", ["Luigi's", "Sakura", "El Faro", "Noma"]), "people": ("integer", 1, 12),
      "time": ("enum", ["18:00", "19:30", "21:00"])},
     "Book a table at {restaurant} for {people} people at {time}."),
    ("convert_currency", "Convert an amount between currencies.",
     {"amount": ("integer", 1, 5000), "source": ("enum", ["EUR", "USD", "JPY"]), "target": ("enum", ["GBP", "CHF", "INR"])},
     "How much is {amount} {source} in {target}?"),
    ("set_timer", "Start a countdown timer.",
     {"minutes": ("integer", 1, 180), "label": ("enum", ["tea", "pasta", "laundry", "break"])},
     "Set a {minutes}-minute timer called {label}."),
    ("send_email", "Send a short e-mail.",
     {"to": ("enum", ["ana@example.com", "li@example.com", "sam@example.com"]), "urgent": ("boolean",)},
     "E-mail {to}; mark it urgent: {urgent}."),
)


def _tool_schema(name: str, doc: str, params: dict[str, tuple]) -> dict[str, Any]:
    props = {}
    for pname, spec in params.items():
        if spec[0] == "enum":
            props[pname] = {"type": "string", "enum": list(spec[1])}
        elif spec[0] == "integer":
            props[pname] = {"type": "integer", "minimum": spec[1], "maximum": spec[2]}
        else:
            props[pname] = {"type": "boolean"}
    return {"name": name, "description": doc,
            "parameters": {"type": "object", "properties": props, "required": sorted(props),
                           "additionalProperties": False}}


class FunctionCallEnv(_FormatEnv):
    """A tool list (size grows with difficulty) and a request that one call answers."""

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        chosen = rng.sample(_TOOLS, min(len(_TOOLS), 1 + self.difficulty))
        name, _, params, request = chosen[0]
        args: dict[str, Any] = {}
        for pname, spec in params.items():
            if spec[0] == "enum":
                args[pname] = rng.choice(spec[1])
            elif spec[0] == "integer":
                args[pname] = rng.randint(spec[1], spec[2])
            else:
                args[pname] = rng.random() < 0.5
        rng.shuffle(chosen)
        tools = [_tool_schema(n, d, p) for n, d, p, _ in chosen]
        words = {k: ("yes" if v else "no") if isinstance(v, bool) else v for k, v in args.items()}
        question = ("You can call these tools:\n" + json.dumps(tools) + "\n\n"
                    f"Request: {request.format(**words)}\n"
                    'Answer with the single tool call as JSON {"name": ..., "arguments": {...}} inside <answer></answer>.')
        return Task(id=f"call-{seed}", prompt=self.make_prompt(question), answer={"name": name, "arguments": args},
                    meta={"format": "function_call", "tools": tools})

    def reference(self, task: Task) -> str:
        return f"<think>One call answers it.</think>\n<answer>{json.dumps(task.answer)}</answer>"
