"""``rewardgym new-env NAME``: a working starting point for a contributed environment.

Writes an env module, a verifier module, a registry entry and an example file. The generated
environment (a number-copying task) passes the conformance suite as written, so a contributor
starts from green and changes one piece at a time. Existing files are never overwritten.
"""

from __future__ import annotations

import re
from pathlib import Path

ENV_TEMPLATE = '''"""{title}: <one line on what the policy must do>."""

from __future__ import annotations

import random

from ..core.env import TextEnv
from ..core.types import Task


class {cls}Env(TextEnv):
    """Procedural tasks; replace ``generate`` and ``reference`` with your task's logic."""

    default_verifier = "rewardgym.verifiers.{module}:{cls}Verifier"

    def __init__(self, *, max_value: int = 1000, **base):
        super().__init__(**base)
        if max_value < 1:
            raise ValueError(f"{cls}Env: max_value must be >= 1, got {{max_value}}")
        self.max_value = max_value

    def generate(self, seed: int) -> Task:
        value = random.Random(seed).randint(0, self.max_value)  # only random.Random(seed): same task everywhere
        question = f"Write the number {{value}} inside <answer></answer>."
        return Task(id=f"{module}-{{seed}}", prompt=self.make_prompt(question), answer=value, meta={{"value": value}})

    def reference(self, task: Task) -> str:
        return f"<think>Copy it.</think><answer>{{task.answer}}</answer>"
'''

VERIFIER_TEMPLATE = '''"""{title} check: <what earns reward, and each reason code it can give>."""

from __future__ import annotations

from ..core.answer import extract_answer
from ..core.types import FORMAT_ERROR, WRONG_ANSWER, Task, Verdict
from ..core.verifier import Verifier


class {cls}Verifier(Verifier):
    """Never raises on model text, never evaluates it, returns well within ``time_limit``."""

    time_limit = 0.5

    def verify(self, completion: str, task: Task) -> Verdict:
        found = extract_answer(self.clip(completion))
        if found.answer is None:
            return Verdict.wrong(found.reason)
        text = found.answer.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            return Verdict.wrong(FORMAT_ERROR, text[:50])
        if int(text) != task.answer:
            return Verdict.wrong(WRONG_ANSWER, int(text))
        return Verdict.right(int(text))
'''

EXAMPLES_TEMPLATE = '''# Known-good and known-bad completions for rewardgym/{name}-v0; add the ways models cheat.
- task: &t {{id: ex-1, prompt: "Write the number 42 inside <answer></answer>.", answer: 42, meta: {{value: 42}}}}
  completion: "<think>Copy it.</think><answer>42</answer>"
  reward: 1.0
  reason: ok
- task: *t
  completion: "<answer>43</answer>"
  reward: 0.0
  reason: wrong_answer
- task: *t
  completion: "<answer>4.2e1</answer>"
  reward: 0.0
  reason: format_error
'''

REGISTRY_TEMPLATE = '''
- id: rewardgym/{name}-v0
  entry_point: rewardgym.envs.{module}:{cls}Env
  kwargs: {{max_value: 1000}}
  verifier: rewardgym.verifiers.{module}:{cls}Verifier
  description: <One sentence users read in `rewardgym list`.>
  tags: [procedural]
'''


def new_env(name: str, root: Path) -> list[Path]:
    """Write the four pieces for env ``name`` (CamelCase) under ``root`` (the folder holding the
    ``rewardgym`` package). Returns the files written or changed."""
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise ValueError(f"env name must be CamelCase letters and digits, like 'WordSort', got {name!r}")
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    package = root / "rewardgym"
    registry = package / "registry.yaml"
    if not registry.exists():
        raise FileNotFoundError(f"{registry} not found: run from the repository root or pass --root")
    if f"id: rewardgym/{name}-v0\n" in registry.read_text(encoding="utf-8"):
        raise FileExistsError(f"rewardgym/{name}-v0 is already in {registry}")
    fields = {"name": name, "cls": name, "module": module, "title": name}
    files = {package / "envs" / f"{module}.py": ENV_TEMPLATE, package / "verifiers" / f"{module}.py": VERIFIER_TEMPLATE,
             package / "examples" / f"{module}.yaml": EXAMPLES_TEMPLATE}
    clash = [str(p) for p in files if p.exists()]
    if clash:
        raise FileExistsError(f"will not overwrite existing files: {', '.join(clash)}")
    for path, template in files.items():
        path.write_text(template.format(**fields), encoding="utf-8")
    with registry.open("a", encoding="utf-8") as f:
        f.write(REGISTRY_TEMPLATE.format(**fields))
    return [*files, registry]
