"""The conformance suite: what every registered environment must satisfy, checked from the registry.

``run(ids)`` returns one ``CheckResult`` per (env, check). The checks:

registry       entry point and verifier import and are a TextEnv / Verifier
examples       the env's example file exists and each example gets its stated reward and reason
make           the env can be made (dataset envs without data are skipped past this point)
check_env      gymnasium's own env checker passes
reference      ``reference(task)`` earns full reward on several seeds
malformed      empty and malformed completions score 0 and nothing raises
adversarial    the shared hostile set (hangs, code, unicode, huge inputs) never raises, every
               verdict is a valid Verdict and arrives within the verifier's time limit
determinism    two fresh processes with different PYTHONHASHSEED give identical tasks and verdicts

A new environment gets all of this by being registered (plus its example file).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from gymnasium.utils.env_checker import check_env

import rewardgym

from .core import DataRequired, EnvEntry, MissingExtra, Task, TextEnv, Verdict, Verifier, load_object

EXAMPLES_DIR = Path(__file__).with_name("examples")
TASKS = 5  # tasks (seeds 0..TASKS-1) each check draws; fewer for large sweeps
#: Seconds of slack over a verifier's own time limit, for scheduling. (A killable pool keeps a
#: warm spare, so replacing a killed worker does not delay the next call.)
TIME_SLACK = 1.0

MALFORMED = ["", " ", "\n\n", "<answer>", "</answer>", "<answer></answer>", "<answer>   </answer>",
             "<think></think>", "answer: 42", "<answer>\x00\x01\x02</answer>", "\ufffd" * 50]

ADVERSARIAL = [
    "<answer>9**9**9**9</answer>",
    "\\boxed{9^{9^{9^{9}}}}",
    "<answer>\\boxed{10^{10^{10^{10}}}}</answer>",
    "<answer>__import__('os').system('touch /tmp/rewardgym-pwned')</answer>",
    "<answer>().__class__.__bases__[0].__subclasses__()</answer>",
    "```python\nwhile True:\n    pass\n```",
    "```python\nimport os\nwhile True:\n    os.fork()\n```",
    "```python\nx = 'a' * (1 << 34)\n```",
    "```python\nimport sys\nsys.exit(0)\n```",
    "<answer>" + "(" * 5000 + "1" + ")" * 5000 + "</answer>",
    "<answer>" + "[" * 20000 + "</answer>",
    "<answer>" + "9" * 100000 + "</answer>",
    "<answer>" * 20000,
    "<think>" + "a" * 2_000_000 + "</think><answer>1</answer>",
    "<answer>١٢٣ + ٤</answer>",
    "<answer>𝟐𝟓 − 𝟓</answer>",
    "<answer>\u202e1+2\u202c</answer>",
    "<answer>\ud800\udfff</answer>",
    "<think>🤔</think><answer>🙂</answer>",
    "<answer>{\"name\": \"x\", \"arguments\": " * 500 + "</answer>",
]


@dataclass(frozen=True)
class CheckResult:
    env_id: str
    check: str
    ok: bool
    message: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skip" if self.skipped else ("ok" if self.ok else "FAIL")


def examples_path(entry: EnvEntry) -> Path:
    """``examples/<Name-vN>.yaml`` if present, else ``examples/<family>.yaml`` (the env module's name)."""
    own = EXAMPLES_DIR / f"{entry.name}.yaml"
    family = EXAMPLES_DIR / f"{entry.entry_point.partition(':')[0].rsplit('.', 1)[-1]}.yaml"
    return own if own.exists() else family


def load_examples(entry: EnvEntry) -> list[dict[str, Any]]:
    path = examples_path(entry)
    if not path.exists():
        raise FileNotFoundError(
            f"{entry.id} has no examples: add {path.relative_to(EXAMPLES_DIR.parent.parent)} (a YAML list of "
            "{task: {id, prompt, answer, meta}, completion, reward, reason}) with at least one completion that "
            "earns full reward and one that earns none; see CONTRIBUTING.md")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    for i, ex in enumerate(data):
        missing = {"task", "completion", "reward"} - set(ex or {})
        if missing:
            raise ValueError(f"{path}: example #{i}: missing field(s) {sorted(missing)}")
    return data


def _verdict_ok(verdict: Any) -> str | None:
    if not isinstance(verdict, Verdict):
        return f"returned {type(verdict).__name__}, not a Verdict"
    if not isinstance(verdict.reward, (int, float)) or not math.isfinite(verdict.reward):
        return f"reward {verdict.reward!r} is not a finite number"
    try:
        json.dumps(verdict.details)
    except (TypeError, ValueError) as exc:
        return f"details not JSON-serialisable: {exc}"
    return None


def _timed(verifier: Verifier, completion: str, task: Task) -> tuple[Verdict, float]:
    start = time.perf_counter()
    verdict = verifier.verify(completion, task)
    return verdict, time.perf_counter() - start


def _tasks(env: TextEnv, n: int) -> list[Task]:
    return [env.generate(seed) for seed in range(n)]


def check_registry(entry: EnvEntry) -> str:
    env_cls, verifier_cls = load_object(entry.entry_point, where=f"{entry.id} entry_point"), \
        load_object(entry.verifier, where=f"{entry.id} verifier")
    if not (isinstance(env_cls, type) and issubclass(env_cls, TextEnv)):
        raise TypeError(f"entry_point {entry.entry_point} is not a TextEnv subclass")
    if not (isinstance(verifier_cls, type) and issubclass(verifier_cls, Verifier)):
        raise TypeError(f"verifier {entry.verifier} is not a Verifier subclass")
    return f"{env_cls.__name__} + {verifier_cls.__name__}"


def check_examples(entry: EnvEntry, verifier: Verifier) -> str:
    examples = load_examples(entry)
    rewards = [float(ex["reward"]) for ex in examples]
    if not examples or max(rewards) <= 0 or min(rewards) > 0:
        raise AssertionError(f"{examples_path(entry).name} needs at least one rewarded and one unrewarded example")
    for i, ex in enumerate(examples):
        verdict = verifier.verify(ex["completion"], Task.from_dict(ex["task"]))
        if not math.isclose(verdict.reward, float(ex["reward"]), abs_tol=1e-9) or \
                ex.get("reason", verdict.reason) != verdict.reason:
            raise AssertionError(f"{examples_path(entry).name} #{i}: expected reward {ex['reward']} reason "
                                 f"{ex.get('reason', '*')}, got {verdict.reward} {verdict.reason} {verdict.details}")
    return f"{len(examples)} examples"


class Skip(Exception):
    """A check that does not apply to this env; reported as skipped with the reason."""


def check_reference(env: TextEnv, entry: EnvEntry, tasks: int = TASKS) -> str:
    for task in _tasks(env, tasks):
        completion = env.reference(task)
        if completion is None and "no-reference" in entry.tags:
            raise Skip("tagged no-reference: the source has no gold answers")
        if completion is None:
            raise AssertionError(f"{type(env).__name__}.reference() returned None for {task.id} "
                                 "(tag the registry entry no-reference if the task has no gold answer)")
        verdict = env.verifier.verify(completion, task)
        if not (verdict.correct and verdict.reward >= 1.0):
            raise AssertionError(f"reference for {task.id} scored {verdict.reward} ({verdict.reason} {verdict.details})")
    return f"{tasks} tasks"


def check_malformed(env: TextEnv) -> str:
    task = env.generate(0)
    for completion in MALFORMED:
        verdict = env.verifier.verify(completion, task)
        if (problem := _verdict_ok(verdict)) or verdict.reward != 0 or verdict.correct:
            raise AssertionError(f"{completion!r}: {problem or f'scored {verdict.reward} ({verdict.reason})'}")
    return f"{len(MALFORMED)} completions"


def check_adversarial(env: TextEnv) -> str:
    task, limit = env.generate(0), env.verifier.time_limit + TIME_SLACK
    env.verifier.verify(env.reference(task) or "", task)  # warm-up: worker start-up is not the input's cost
    worst = 0.0
    for completion in ADVERSARIAL:
        verdict, took = _timed(env.verifier, completion, task)
        worst = max(worst, took)
        if problem := _verdict_ok(verdict):
            raise AssertionError(f"{completion[:60]!r}: {problem}")
        if took > limit:
            raise AssertionError(f"{completion[:60]!r}: took {took:.2f}s, limit {env.verifier.time_limit}s")
    return f"{len(ADVERSARIAL)} completions, slowest {worst:.3f}s"


def digest(env_id: str, make_kwargs: dict[str, Any] | None = None, tasks: int = TASKS) -> str:
    """A hash of the tasks and of the verdicts on references and hostile completions."""
    env = rewardgym.make(env_id, **(make_kwargs or {})).unwrapped
    h = hashlib.sha256()
    for task in _tasks(env, tasks):
        h.update(task.fingerprint().encode())
        for completion in [env.reference(task) or "", *MALFORMED]:
            verdict = env.verifier.verify(completion, task).to_dict()
            h.update(json.dumps(verdict, sort_keys=True, default=repr).encode())
    return h.hexdigest()


MARK = "rewardgym-digests: "


def digests_in_subprocess(env_ids: list[str], hash_seed: int, make_kwargs: dict[str, dict] | None = None,
                          tasks: int = TASKS) -> dict[str, str]:
    """``digest`` of each id, computed in a fresh interpreter with the given PYTHONHASHSEED."""
    code = ("import json, sys; from rewardgym.conformance import MARK, digest; a = json.load(sys.stdin); "
            "r = {i: digest(i, a['kw'].get(i), a['tasks']) for i in a['ids']}; print('\\n' + MARK + json.dumps(r))")
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps({"ids": env_ids, "kw": make_kwargs or {}, "tasks": tasks}),
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"determinism subprocess failed:\n{proc.stderr[-2000:]}")
    # Environments may print; the result is the line that starts with the marker.
    line = next(line for line in reversed(proc.stdout.splitlines()) if line.startswith(MARK))
    return json.loads(line[len(MARK):])


def _attempt(env_id: str, name: str, fn: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(env_id, name, True, fn())
    except Skip as skip:
        return CheckResult(env_id, name, True, str(skip), skipped=True)
    except MissingExtra as exc:
        return CheckResult(env_id, name, True, f"skipped: {exc}", skipped=True)
    except Exception as exc:  # a failing check is a result, reported with its cause
        return CheckResult(env_id, name, False, f"{type(exc).__name__}: {exc}")


def check_one(env_id: str, make_kwargs: dict[str, Any] | None = None, tasks: int = TASKS) -> list[CheckResult]:
    """Every in-process check of one environment."""
    entry = rewardgym.spec(env_id)
    results = [_attempt(entry.id, "registry", lambda: check_registry(entry))]
    if not results[0].ok:
        return results
    results.append(_attempt(entry.id, "examples", lambda: check_examples(entry, load_object(entry.verifier)())))
    try:
        env = rewardgym.make(entry.id, **(make_kwargs or {}))
    except DataRequired as exc:
        return results + [CheckResult(entry.id, "make", True, f"needs data: {exc}", skipped=True)]
    except MissingExtra as exc:
        return results + [CheckResult(entry.id, "make", True, f"skipped: {exc}", skipped=True)]
    except Exception as exc:
        return results + [CheckResult(entry.id, "make", False, f"{type(exc).__name__}: {exc}")]
    raw: TextEnv = env.unwrapped
    results.append(CheckResult(entry.id, "make", True, type(raw).__name__))

    def gym_check() -> str:
        check_env(raw, skip_render_check=False)
        return "gymnasium.utils.env_checker.check_env passed"

    for name, fn in (("check_env", gym_check), ("reference", lambda: check_reference(raw, entry, tasks)),
                     ("malformed", lambda: check_malformed(raw)), ("adversarial", lambda: check_adversarial(raw))):
        results.append(_attempt(entry.id, name, fn))
    env.close()
    return results


def run(env_ids: Iterable[str] | None = None, *, make_kwargs: dict[str, dict] | None = None,
        determinism: bool = True) -> list[CheckResult]:
    """The whole suite over ``env_ids`` (default: every registered id)."""
    ids = [rewardgym.full_id(i) for i in env_ids] if env_ids else [e.id for e in rewardgym.list_envs()]
    make_kwargs = {rewardgym.full_id(k): v for k, v in (make_kwargs or {}).items()}
    results = [r for i in ids for r in check_one(i, make_kwargs.get(i))]
    if determinism:
        runnable = [i for i in ids if any(r.env_id == i and r.check == "make" and r.ok and not r.skipped for r in results)]
        results += determinism_results(runnable, make_kwargs)
    return results


def determinism_results(ids: list[str], make_kwargs: dict[str, dict] | None = None, tasks: int = TASKS) -> list[CheckResult]:
    if not ids:
        return []
    first, second = (digests_in_subprocess(ids, seed, make_kwargs, tasks) for seed in (0, 4242))
    return [CheckResult(i, "determinism", first[i] == second[i],
                        "identical across PYTHONHASHSEED=0 and 4242" if first[i] == second[i]
                        else "tasks or verdicts differ between processes with different PYTHONHASHSEED")
            for i in ids]
