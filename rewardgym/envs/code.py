"""Code environments: the completion is a program, the reward is the share of hidden tests it passes.

``CodeEnv`` is dataset-backed (``data=`` a local .jsonl, .jsonl.gz, .json or .parquet file) in
one of three record formats, detected from the fields or given as ``format=``:

- ``humaneval``: task_id, prompt (signature + docstring), entry_point, canonical_solution,
  test (defines ``check(candidate)``). One hidden test: ``check(entry_point)``.
- ``mbpp``: task_id, prompt or text (the description), test or test_list (assert lines),
  code (the reference), optional test_setup_code. Each assert is one test.
- ``stdio``: task_id, prompt or question, tests ([{"input", "output"}, ...]) or inputs/outputs
  lists, optional solution. Each case is one test (contest style).

``CodeBasicsEnv`` is procedural and needs no download: small stdin/stdout programming tasks
(sums, reversals, counting, FizzBuzz, ...) with test cases drawn from the seed.

The check is rewardgym.verifiers.code.CodeVerifier (sandboxed); ``all_or_nothing=True`` makes
the reward 1 only when every test passes; ``max_turns=k`` turns an env multi-turn (a failed
attempt gets the test feedback as the next observation, up to k attempts).
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable

from ..core.data import load_records
from ..core.env import DataRequired, TextEnv
from ..core.types import Task
from ..verifiers.code import CodeVerifier

FORMATS = ("humaneval", "mbpp", "stdio")
HOW_TO_ANSWER = ("Write your solution in Python, in one ```python code block inside <answer></answer>, "
                 "for example <answer>\n```python\n...\n```\n</answer>.")
_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$", re.MULTILINE)


def detect_format(record: dict[str, Any]) -> str:
    if {"entry_point", "test", "prompt"} <= set(record):
        return "humaneval"
    if "tests" in record or {"inputs", "outputs"} <= set(record):
        return "stdio"
    if ("test" in record or "test_list" in record) and ("code" in record or "prompt" in record or "text" in record):
        return "mbpp"
    raise ValueError(f"cannot tell the format of a record with fields {sorted(record)}; pass format= one of {FORMATS}")


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


class _CodeEnvBase(TextEnv):
    """Shared by the code envs: the reward mode and the optional multi-turn feedback loop.

    With ``max_turns`` > 1 a failed attempt does not end the episode: the next observation
    is the feedback (tests passed, the first failure's message) and the policy tries again,
    until a solution passes every test or ``max_turns`` attempts were made. Each step's
    reward is that attempt's verdict.
    """

    default_verifier = "rewardgym.verifiers.code:CodeVerifier"

    def __init__(self, *, all_or_nothing: bool = False, max_turns: int = 1, **base: Any):
        super().__init__(**base)
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"{type(self).__name__}: max_turns must be an int >= 1, got {max_turns!r}")
        if all_or_nothing and isinstance(self.verifier, CodeVerifier):
            self.verifier.all_or_nothing = True
        self.max_turns, self._turn = max_turns, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._turn = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        self._turn += 1
        info["turn"] = self._turn
        verdict = info["verdict"]
        if not verdict.correct and self._turn < self.max_turns:
            self._done = False  # the episode goes on with the feedback as the next observation
            return feedback(verdict), reward, False, False, info
        return obs, reward, terminated, truncated, info

    def reference(self, task: Task) -> str | None:
        solution = task.meta.get("solution")
        if solution is None:
            return None
        return f"<think>The program below solves it.</think>\n<answer>\n{fenced(solution)}\n</answer>"


def feedback(verdict: Any) -> str:
    """The observation after a failed attempt in a multi-turn episode."""
    details = verdict.details
    if "total" in details:
        head = f"Your solution passed {details['passed']} of {details['total']} tests."
        if details.get("first_failure"):
            head += f" First failure: {details['first_failure']}"
    else:
        head = f"Your answer could not be tested ({verdict.reason})."
    return f"{head}\nFix the solution and answer again in the same format. {HOW_TO_ANSWER}"


class CodeEnv(_CodeEnvBase):
    """Dataset-backed code tasks (see the module docstring for the formats).

    Args:
      data: path to the records (required).
      format: "humaneval", "mbpp", "stdio" or "auto" (detected from the first record).
      all_or_nothing: reward 1 only when every test passes (default: fraction passed).
      name: used in error messages, e.g. the registry id.
    """

    def __init__(self, *, data: Any = None, format: str = "auto", name: str = "CodeEnv",
                 **base: Any):
        super().__init__(**base)
        if data is None:
            raise DataRequired(f"{name} needs data=: a local path to the records. HumanEval: data/HumanEval.jsonl.gz "
                               "of github.com/openai/human-eval; MBPP: the test split of MBPP as JSONL "
                               "(github.com/google-research/google-research/tree/master/mbpp, or "
                               "deepseek-ai/DeepSeek-Coder Evaluation/MBPP/data/mbpp_test.jsonl)")
        if format not in FORMATS + ("auto",):
            raise ValueError(f"{name}: format must be one of {FORMATS} or 'auto', got {format!r}")
        self.records = load_records(data)
        if not self.records:
            raise ValueError(f"{name}: {data} holds no records")
        self.format = detect_format(self.records[0]) if format == "auto" else format
        self.source = str(data)

    @property
    def num_tasks(self) -> int:
        return len(self.records)

    def task_at(self, index: int) -> Task:
        if not 0 <= index < len(self.records):
            raise IndexError(f"task index {index} out of range 0..{len(self.records) - 1} ({self.source})")
        record = self.records[index]
        try:
            return getattr(self, f"_{self.format}")(record, index)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{self.source}: record #{index} is not a valid {self.format} record: "
                             f"{type(exc).__name__}: {exc}") from None

    def _humaneval(self, r: dict[str, Any], index: int) -> Task:
        prompt_code, entry = r["prompt"], r["entry_point"]
        question = f"Complete this Python function.\n\n{fenced(prompt_code)}\n\n{HOW_TO_ANSWER}"
        answer = {"kind": "function", "tests": [f"{r['test']}\n\ncheck({entry})\n"],
                  "preamble": "\n".join(_IMPORT.findall(prompt_code))}
        meta = {"entry_point": entry, "prompt_code": prompt_code, "format": "humaneval",
                "solution": prompt_code + r["canonical_solution"] if r.get("canonical_solution") else None}
        return Task(id=str(r.get("task_id", f"humaneval-{index}")), prompt=self.make_prompt(question),
                    answer=answer, meta=meta)

    def _mbpp(self, r: dict[str, Any], index: int) -> Task:
        tests = r.get("test_list", r.get("test"))
        if isinstance(tests, str):
            tests = [line for line in tests.splitlines() if line.strip()]
        if not tests or not all(isinstance(t, str) for t in tests):
            raise ValueError("needs a non-empty list of assert lines in 'test' or 'test_list'")
        text = r.get("text") or r["prompt"]
        shown = "\n".join(tests)
        question = f"{text.strip()}\nYour code should pass these tests:\n\n{fenced(shown)}\n\n{HOW_TO_ANSWER}"
        answer = {"kind": "function", "tests": tests, "preamble": r.get("test_setup_code") or ""}
        code = r.get("code")
        return Task(id=f"mbpp-{r.get('task_id', index)}", prompt=self.make_prompt(question), answer=answer,
                    meta={"format": "mbpp", "solution": code.replace("\r\n", "\n") if code else None})

    def _stdio(self, r: dict[str, Any], index: int) -> Task:
        if "tests" in r:
            tests = [{"input": str(t["input"]), "output": str(t["output"])} for t in r["tests"]]
        else:
            tests = [{"input": str(i), "output": str(o)} for i, o in zip(r["inputs"], r["outputs"], strict=True)]
        if not tests:
            raise ValueError("needs at least one test case")
        text = r.get("question") or r["prompt"]
        question = f"{text.strip()}\n\nRead from standard input and write to standard output. {HOW_TO_ANSWER}"
        return Task(id=str(r.get("task_id", f"stdio-{index}")), prompt=self.make_prompt(question),
                    answer={"kind": "stdio", "tests": tests},
                    meta={"format": "stdio", "solution": r.get("solution")})


# -- procedural tasks --------------------------------------------------------------------
# Each family: (statement, reference program, input generator, expected output).
# The expected output is computed here, by trusted code, from the generated input.

def _ints(rng: random.Random) -> list[int]:
    return [rng.randint(-50, 50) for _ in range(rng.randint(1, 8))]


def _words(rng: random.Random) -> list[str]:
    return ["".join(rng.choice("abcdeilmnorstu") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 6))]


def _line(values: list[Any]) -> str:
    return " ".join(map(str, values)) + "\n"


Family = tuple[str, str, Callable[[random.Random], str], Callable[[str], str]]
FAMILIES: dict[str, Family] = {
    "sum": ("Read one line of space-separated integers and print their sum.",
            "print(sum(map(int, input().split())))",
            lambda rng: _line(_ints(rng)), lambda s: f"{sum(map(int, s.split()))}\n"),
    "max_minus_min": ("Read one line of space-separated integers and print the largest minus the smallest.",
                      "xs = list(map(int, input().split()))\nprint(max(xs) - min(xs))",
                      lambda rng: _line(_ints(rng)),
                      lambda s: f"{max(map(int, s.split())) - min(map(int, s.split()))}\n"),
    "reverse_words": ("Read one line of words and print them in reverse order, separated by single spaces.",
                      "print(' '.join(input().split()[::-1]))",
                      lambda rng: _line(_words(rng)), lambda s: _line(s.split()[::-1])),
    "count_vowels": ("Read one line of lowercase words and print how many vowels (a, e, i, o, u) it contains.",
                     "print(sum(c in 'aeiou' for c in input()))",
                     lambda rng: _line(_words(rng)), lambda s: f"{sum(c in 'aeiou' for c in s.strip())}\n"),
    "fizzbuzz": ("Read an integer n and print the numbers 1..n one per line, but Fizz for multiples of 3, "
                 "Buzz for multiples of 5 and FizzBuzz for multiples of both.",
                 "for i in range(1, int(input()) + 1):\n"
                 "    print('FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else 'Buzz' if i % 5 == 0 else i)",
                 lambda rng: f"{rng.randint(1, 30)}\n",
                 lambda s: "".join(("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0
                                    else str(i)) + "\n" for i in range(1, int(s) + 1))),
    "running_sum": ("Read one line of space-separated integers and print their running sums on one line, "
                    "separated by spaces.",
                    "total, out = 0, []\nfor x in map(int, input().split()):\n    total += x\n    out.append(total)\n"
                    "print(*out)",
                    lambda rng: _line(_ints(rng)),
                    lambda s: _line([sum(map(int, s.split()[:i + 1])) for i in range(len(s.split()))])),
    "sort_unique": ("Read one line of space-separated integers and print the distinct values in increasing "
                    "order, separated by spaces.",
                    "print(*sorted(set(map(int, input().split()))))",
                    lambda rng: _line(_ints(rng)), lambda s: _line(sorted(set(map(int, s.split()))))),
}


class CodeBasicsEnv(_CodeEnvBase):
    """Procedural stdin/stdout programming tasks; no download needed.

    Args:
      families: which task families to draw from (default: all of FAMILIES).
      num_tests: test cases per task.
      all_or_nothing: reward 1 only when every test passes.
    """

    def __init__(self, *, families: list[str] | None = None, num_tests: int = 5, **base: Any):
        super().__init__(**base)
        chosen = list(families or FAMILIES)
        unknown = sorted(set(chosen) - set(FAMILIES))
        if unknown or not chosen:
            raise ValueError(f"CodeBasicsEnv: unknown families {unknown}; choose from {sorted(FAMILIES)}")
        if not 1 <= num_tests <= 50:
            raise ValueError(f"CodeBasicsEnv: num_tests must be within 1..50, got {num_tests}")
        self.families, self.num_tests = chosen, num_tests

    def generate(self, seed: int) -> Task:
        rng = random.Random(seed)
        family = self.families[rng.randrange(len(self.families))]
        statement, solution, make_input, expected = FAMILIES[family]
        tests = []
        for _ in range(self.num_tests):
            text = make_input(rng)
            tests.append({"input": text, "output": expected(text)})
        example = tests[0]
        question = (f"{statement}\n\nExample input:\n{example['input']}Example output:\n{example['output']}\n"
                    f"Read from standard input and write to standard output. {HOW_TO_ANSWER}")
        return Task(id=f"code-basics-{seed}", prompt=self.make_prompt(question), answer={"kind": "stdio", "tests": tests},
                    meta={"format": "stdio", "family": family, "solution": solution})
