"""Math environments: problems with one checkable answer, judged by the math verifier.

``ProceduralMathEnv`` generates problems with sympy (no download; ``rewardgym/Math-v0``).
``MathEnv`` serves a dataset (JSONL, Parquet, a list of dicts, or the Hugging Face Hub) with
configurable field names and gold-answer extraction; ``GSM8KEnv``, ``MATH500Env`` and
``AIMEEnv`` are MathEnv with the defaults of those datasets and a pointer to where to get them.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from typing import Any

from ..core.answer import boxed_contents
from ..core.data import load_records
from ..core.env import DataRequired, TextEnv
from ..core.types import Task
from .math_skills import LEVELS, SKILLS

ANSWER_FORMATS = ("auto", "plain", "gsm8k", "boxed")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def gsm8k_answer(text: str) -> str | None:
    """The number after ``####`` in a GSM8K rationale, without thousands separators."""
    m = _GSM8K_FINAL.search(text)
    return m.group(1).replace(",", "").strip() if m else None


def boxed_answer(text: str) -> str | None:
    """The last ``\\boxed{}`` of a MATH-style solution."""
    boxes = boxed_contents(text)
    return boxes[-1].strip() if boxes else None


def gold_answer(value: Any, answer_format: str) -> str | None:
    """The gold answer string from a record's answer field, per ``answer_format``."""
    if value is None:
        return None
    text = str(value).strip()
    if answer_format == "gsm8k" or (answer_format == "auto" and "####" in text):
        return gsm8k_answer(text)
    if answer_format == "boxed" or (answer_format == "auto" and "\\boxed" in text):
        return boxed_answer(text)
    return text or None


def _reference(answer: str, working: str = "") -> str:
    return f"<think>{working or 'Working it out.'}</think>\n<answer>{answer}</answer>"


class MathEnv(TextEnv):
    """Dataset-backed math problems.

    Args:
      data: the records: a path (.jsonl, .jsonl.gz, .json, .parquet), a list of dicts, or a Hub
        reference (``{"hf": "openai/gsm8k", "config": "main", "split": "test"}`` or
        ``"hf:openai/gsm8k:main:test"``, needs ``pip install datasets``).
      question_field: record field with the problem text (default: the first of problem, question, prompt).
      answer_field: record field with the answer (default: the first of answer, solution).
      answer_format: how to read the gold answer from that field: ``plain`` (as is), ``gsm8k``
        (the number after ``####``), ``boxed`` (the last ``\\boxed{}``), ``auto`` (by content;
        the default unless a subclass's ``defaults`` say otherwise).
      id_field: record field with a stable id (default: the record's position).
      meta_fields: record fields copied into ``Task.meta`` (e.g. subject and level, for breakdowns).
      name: prefix of task ids and name used in messages.
      limit: keep only the first ``limit`` records.
    """

    default_verifier = "rewardgym.verifiers.math:MathVerifier"
    name = "math"
    #: Where to get the data, for the DataRequired message; subclasses name their dataset.
    data_hint = ("pass data=<path to .jsonl/.parquet>, a list of dicts, or "
                 "{'hf': 'owner/name', 'config': ..., 'split': ...}")
    defaults: dict[str, Any] = {}

    def __init__(self, *, data: Any = None, question_field: str | None = None, answer_field: str | None = None,
                 answer_format: str | None = None, id_field: str | None = None,
                 meta_fields: Sequence[str] | None = None, name: str | None = None, limit: int | None = None,
                 **base: Any):
        super().__init__(**base)
        self.name = name or self.name
        if data is None:
            raise DataRequired(f"{type(self).__name__} ({self.name}) needs data: {self.data_hint}")
        answer_format = answer_format or self.defaults.get("answer_format", "auto")
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"{type(self).__name__}: answer_format must be one of {ANSWER_FORMATS}, "
                             f"got {answer_format!r}")
        records = load_records(data)
        if limit is not None:
            records = records[:limit]
        if not records:
            raise ValueError(f"{type(self).__name__}: the data holds no records")
        question_field = question_field or self.defaults.get("question_field") or \
            _first_present(records[0], ("problem", "question", "prompt"), "question", self)
        answer_field = answer_field or self.defaults.get("answer_field") or \
            _first_present(records[0], ("answer", "solution"), "answer", self)
        id_field = id_field or self.defaults.get("id_field")
        meta_fields = tuple(self.defaults.get("meta_fields", ()) if meta_fields is None else meta_fields)
        source = f"{type(self).__name__}: {data if isinstance(data, (str, os.PathLike)) else 'data'}"
        self._rows = [self._row(f"{source}, record #{i}", i, r, (question_field, answer_field, id_field),
                                answer_format, meta_fields) for i, r in enumerate(records)]
        seen: dict[str, int] = {}
        for i, row in enumerate(self._rows):
            if row[0] in seen:
                raise ValueError(f"{source}, record #{i}: task id {row[0]!r} repeats record #{seen[row[0]]}; "
                                 f"the {id_field!r} field must be unique")
            seen[row[0]] = i

    def _row(self, where: str, index: int, record: dict[str, Any], fields: tuple[str, str, str | None],
             answer_format: str, meta_fields: tuple[str, ...]) -> tuple[str, str, str, dict[str, Any]]:
        question_field, answer_field, id_field = fields
        for field in (question_field, answer_field, *((id_field,) if id_field else ()), *meta_fields):
            if field not in record:
                raise ValueError(f"{where} has no field {field!r}; fields: {sorted(record)}")
        answer = gold_answer(record[answer_field], answer_format)
        if answer is None:
            raise ValueError(f"{where}: no {answer_format} answer in field {answer_field!r}: "
                             f"{str(record[answer_field])[-80:]!r}")
        task_id = f"{self.name}-{record[id_field] if id_field else index}"
        return task_id, str(record[question_field]), answer, {f: record[f] for f in meta_fields}

    @property
    def num_tasks(self) -> int:
        return len(self._rows)

    def task_at(self, index: int) -> Task:
        if not 0 <= index < len(self._rows):
            raise IndexError(f"{type(self).__name__}: task index {index} out of range 0..{len(self._rows) - 1}")
        task_id, question, answer, extra = self._rows[index]
        return Task(id=task_id, prompt=self.make_prompt(question), answer=answer,
                    meta={"index": index, "source": self.name, **extra})

    def reference(self, task: Task) -> str:
        return _reference(task.answer)


def _first_present(record: dict[str, Any], names: Sequence[str], role: str, env: TextEnv) -> str:
    for name in names:
        if name in record:
            return name
    raise ValueError(f"{type(env).__name__}: no {role} field found (looked for {list(names)}); "
                     f"records have {sorted(record)}; pass {role}_field=")


class GSM8KEnv(MathEnv):
    """GSM8K grade-school word problems; the gold answer is the number after ``####``."""

    name = "gsm8k"
    defaults = {"question_field": "question", "answer_field": "answer", "answer_format": "gsm8k"}
    data_hint = ("GSM8K test.jsonl from github.com/openai/grade-school-math (grade_school_math/data/test.jsonl): "
                 "data='path/to/test.jsonl'; or with `pip install datasets`: "
                 "data={'hf': 'openai/gsm8k', 'config': 'main', 'split': 'test'}")


class MATH500Env(MathEnv):
    """MATH-500 competition problems (the PRM800K test split of MATH); LaTeX answers."""

    name = "math500"
    defaults = {"question_field": "problem", "answer_field": "answer", "id_field": "unique_id",
                "meta_fields": ("subject", "level")}
    data_hint = ("MATH-500 test.jsonl from github.com/openai/prm800k (prm800k/math_splits/test.jsonl): "
                 "data='path/to/test.jsonl'; or with `pip install datasets`: "
                 "data={'hf': 'HuggingFaceH4/MATH-500', 'split': 'test'}")


class AIMEEnv(MathEnv):
    """AIME problems; answers are integers 0-999."""

    name = "aime"
    defaults = {"question_field": "problem", "answer_field": "answer", "id_field": "id", "answer_format": "plain"}
    data_hint = ("AIME jsonl with problem and answer fields, e.g. evaluation/data/aime24/test.jsonl from "
                 "github.com/QwenLM/Qwen2.5-Math: data='path/to/test.jsonl'; or with `pip install datasets`: "
                 "data={'hf': 'HuggingFaceH4/aime_2024', 'split': 'train'}")


class ProceduralMathEnv(TextEnv):
    """Sympy-generated problems with exact answers; a pure function of the seed.

    Args:
      skills: which skills to draw from (default all): linear, quadratic, system, derivative,
        integral, simplify, modular, fractions.
      difficulty: a level 1-5, or ``[low, high]`` to draw a level per task.
    """

    default_verifier = "rewardgym.verifiers.math:MathVerifier"

    def __init__(self, *, skills: Sequence[str] | None = None, difficulty: int | Sequence[int] = 2, **base: Any):
        super().__init__(**base)
        chosen = list(skills) if skills is not None else list(SKILLS)
        unknown = [s for s in chosen if s not in SKILLS]
        if unknown or not chosen:
            raise ValueError(f"ProceduralMathEnv: unknown or no skills {unknown or chosen}; choose from {list(SKILLS)}")
        low, high = (difficulty, difficulty) if isinstance(difficulty, int) else tuple(difficulty)
        if not (low in LEVELS and high in LEVELS and low <= high):
            raise ValueError(f"ProceduralMathEnv: difficulty must be 1..5 or [low, high] within it, got {difficulty!r}")
        self.skills, self.levels = chosen, (low, high)

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        skill = self.skills[rng.randrange(len(self.skills))]
        level = rng.randint(*self.levels)
        problem = SKILLS[skill](rng, level)
        return Task(id=f"math-{seed}", prompt=self.make_prompt(problem.question), answer=problem.answer,
                    meta={"skill": skill, "difficulty": level, "solution": problem.solution})

    def reference(self, task: Task) -> str:
        return _reference(task.answer, task.meta.get("solution", ""))
