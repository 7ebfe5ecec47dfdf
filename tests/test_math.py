"""Math verifier, dataset-backed and procedural math envs, and their registry ids.

Verdicts go through the real worker pool and math-verify. The data tests read the copies in
../shared/data (see SOURCES.md there) and skip when they are absent.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rewardgym
from rewardgym.core import DataRequired, Task
from rewardgym.core.data import DataError, load_records
from rewardgym.envs.math import MathEnv, ProceduralMathEnv, gold_answer
from rewardgym.envs.math_skills import LEVELS, SKILLS
from rewardgym.verifiers.math import MathVerifier, judge, math_pool
from rewardgym.verifiers.math_sll import install as install_two_stage_parsing
from rewardgym.verifiers.math_warm import WARM_UP_PAIRS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not found (shared test data, see ../shared/data/SOURCES.md)")
    return path


def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in data_file(name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def verifier() -> MathVerifier:
    return MathVerifier()


@pytest.fixture
def warm_pool() -> None:
    """Start the shared pool's workers first: the limit bounds checks, not the pool's start-up."""
    math_pool().start()


def task(answer: str) -> Task:
    return Task(id="t", prompt="q", answer=answer)


def as_model_would(answer: str, rationale: str = "Working through the problem step by step.") -> str:
    return f"{rationale}\nTherefore, the final answer is $\\boxed{{{answer}}}$."


# -- the equivalence table: (gold, answer as written, intended reward) --------------------------
EQUIVALENCES = [
    # fractions and decimals: equal values agree; decimals are compared after rounding to 6 places
    ("\\frac{1}{2}", "0.5", 1.0), ("0.75", "\\frac{3}{4}", 1.0), ("\\frac{3}{4}", "3/4", 1.0),
    ("\\frac{1}{2}", "\\frac{2}{4}", 1.0), ("2", "2.0", 1.0), ("2", "2.01", 0.0),
    ("\\frac{1}{3}", "0.3333333", 1.0), ("\\frac{1}{3}", "0.333", 0.0), ("\\pi", "3.14159", 0.0),
    # \dfrac and \tfrac are \frac
    ("\\frac{3}{4}", "\\dfrac{3}{4}", 1.0), ("\\frac{3}{4}", "\\tfrac34", 1.0),
    # intervals: endpoints and their openness matter; an inequality is not an interval
    ("[0, 1)", "[0,1)", 1.0), ("[0, 1)", "(0, 1)", 0.0), ("(-\\infty, 3]", "(-\\infty, 3]", 1.0),
    ("[0,1) \\cup (2, 3]", "[0,1) \\cup (2,3]", 1.0), ("(-\\infty, 3]", "x \\le 3", 0.0),
    # sets and lists are unordered, tuples (ordered pairs) are ordered
    ("\\{1, 2\\}", "\\{2, 1\\}", 1.0), ("1, 2", "2, 1", 1.0), ("\\{1, 2\\}", "\\{1, 2, 3\\}", 0.0),
    ("(1, 2)", "(2, 1)", 0.0),
    # units, currency and \text{} are dropped; text answers compare case-insensitively
    ("10", "10 \\text{ cm}", 1.0), ("10", "10\\text{ meters}", 1.0), ("5", "\\$5", 1.0),
    ("90^\\circ", "90", 1.0), ("\\text{Evelyn}", "Evelyn", 1.0), ("\\text{Evelyn}", "\\text{evelyn}", 1.0),
    ("\\text{Evelyn}", "\\text{Bob}", 0.0),
    # percentages: 50\% matches both 50 and 0.5 (math-verify's lenient reading), either way round
    ("50\\%", "50", 1.0), ("50\\%", "0.5", 1.0), ("50", "50\\%", 1.0), ("0.5", "50\\%", 1.0),
    # thousands separators: commas and LaTeX thin spaces; a bare space is not a separator
    ("1000", "1,000", 1.0), ("1000", "1{,}000", 1.0), ("1000000", "1,000,000", 1.0),
    ("1000", "1\\,000", 1.0), ("1000", "1 000", 0.0),
    # multiple-choice letters, with or without parentheses or \text
    ("C", "C", 1.0), ("C", "(C)", 1.0), ("C", "\\text{(C)}", 1.0), ("C", "\\textbf{C}", 1.0),
    ("\\text{(C)}", "C", 1.0), ("C", "D", 0.0),
    # radicals and symbolic forms are compared by value; variable names matter
    ("3\\sqrt{2}", "\\sqrt{18}", 1.0), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", 1.0),
    ("x^2+2x+1", "(x+1)^2", 1.0), ("2x", "2y", 0.0), ("-3", "3", 0.0),
    # an assignment gives its right-hand side; a sentence's final period is ignored; words are not numbers
    ("3", "x = 3", 1.0), ("3", "x=4", 0.0), ("5", "5.", 1.0), ("5", "five", 0.0),
]


@pytest.mark.parametrize("gold,written,reward", EQUIVALENCES)
def test_equivalence_table(verifier, gold, written, reward):
    for completion in (f"<answer>{written}</answer>", as_model_would(written)):
        verdict = verifier.verify(completion, task(gold))
        assert verdict.reward == reward, (gold, completion, verdict)
        assert verdict.reason == ("ok" if reward else "wrong_answer")
        assert verdict.correct == bool(reward)


@pytest.mark.parametrize("completion,reason", [
    ("\\boxed{3} ... no wait, \\boxed{4}", "ambiguous"),
    ("<answer>3</answer> or <answer>4</answer>", "ambiguous"),
    ("\\boxed{3} and \\boxed{0.3}", "ambiguous"),
    ("\\boxed{4} hmm, \\boxed{3}", "ambiguous"),
    ("The answer is 3.", "no_answer"),
    ("<answer>3", "no_answer"),
    ("<answer> </answer>", "format_error"),
])
def test_hedging_and_missing_answers_score_nothing(verifier, completion, reason):
    verdict = verifier.verify(completion, task("3"))
    assert (verdict.reward, verdict.reason) == (0.0, reason)


def test_answer_block_wins_over_boxes_and_repeats_are_fine(verifier):
    assert verifier.verify("\\boxed{4} <answer>3</answer>", task("3")).reward == 1.0
    assert verifier.verify("\\boxed{3} so again \\boxed{3}", task("3")).reward == 1.0
    assert verifier.verify("<answer>\\boxed{3}</answer>", task("3")).reward == 1.0


def test_parsed_is_the_normalised_answer(verifier):
    verdict = verifier.verify("<answer>0.5</answer>", task("\\frac{1}{2}"))
    assert verdict.parsed == "\\frac{1}{2}" and verdict.details == {}
    assert verifier.verify("\\boxed{\\dfrac{3}{4}}", task("0.75")).parsed == "\\frac{3}{4}"
    assert verifier.verify("<answer>19</answer>", task("18")).parsed == "19"


@pytest.mark.parametrize("gold,written,expected", [
    ("0.5", "0.5", (True, "\\frac{1}{2}")), ("\\dfrac{3}{4}", " \\dfrac{3}{4} ", (True, "\\frac{3}{4}")),
    ("x \\in [-2,7]", "x \\in  [-2,7]", (True, "x \\in  [-2,7]")), ("0.5", "\\frac12", (True, "\\frac{1}{2}")),
    ("0.5", "0.6", (False, "0.6")),
])
def test_judge_on_the_golds_own_text_gives_the_full_checks_verdict(gold, written, expected):
    # the gold's exact text reuses the gold's parse and skips math-verify; with other spacing the
    # answer is still parsed (its own normal form) but not compared
    assert math_pool().call(judge, gold, written, timeout=30).value == expected


def test_every_warm_up_pair_checks_cleanly():
    """The fork server runs these before it forks any worker, ignoring failures: a pair that
    raised would silently warm nothing, one that hung would stall every pool's start-up."""
    results = math_pool().map(judge, WARM_UP_PAIRS, star=True, timeout=30)
    assert [r.status for r in results] == ["ok"] * len(WARM_UP_PAIRS)


def test_two_stage_parsing_gives_latex2sympys_own_results():
    """Workers parse SLL first and rerun latex2sympy's LL parse on any syntax error; every
    outcome must be what the LL parse alone gives (here, in this process, before and after)."""
    from latex2sympy2_extended.latex2sympy2 import latex2sympy
    from sympy import srepr

    def outcome(latex: str) -> str:
        try:
            return srepr(latex2sympy(latex))
        except Exception as exc:  # noqa: BLE001 - a failure is an outcome too
            return f"error: {type(exc).__name__}"

    texts = ["x^3+3x-6", "8n^2 + 4n + 1", "\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]",  # SLL rejects these
             "\\frac{1}{2}", "(3, \\frac{\\pi}{2})", "\\{1\\pm\\sqrt{5},-2\\}", "x \\in [-2,7]", "1,000",
             "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\text{east}", "\\frac{1}{", "2 +* 3", "\\sqrt[3]{8}"]
    before = [outcome(text) for text in texts]
    assert install_two_stage_parsing() and not install_two_stage_parsing()  # installed once, here
    assert [outcome(text) for text in texts] == before
    assert not before[0].startswith("error") and before[-3].startswith("error")  # both paths covered


# -- hostile input: every call returns within its limit and the pool keeps serving --------------
def test_power_tower_times_out_within_the_limit(warm_pool):
    verifier = MathVerifier(time_limit=1.5)
    start = time.monotonic()
    verdict = verifier.verify("So it is \\boxed{9^{9^{9}}}.", task("3"))
    elapsed = time.monotonic() - start
    assert (verdict.reward, verdict.reason, verdict.parsed) == (0.0, "timeout", "9^{9^{9}}")
    assert elapsed < 1.5 + 3.0, f"took {elapsed:.1f} s against a 1.5 s limit"
    start = time.monotonic()
    assert verifier.verify("So it is \\boxed{9^{9^{9}}}.", task("3")) == verdict  # cached, no second kill
    assert time.monotonic() - start < 1.0
    assert verifier.verify("\\boxed{3}", task("3")).reward == 1.0  # the pool still serves


@pytest.mark.parametrize("completion,reason", [
    ("\\boxed{" * 50_000 + "1" + "}" * 50_000, "ambiguous"),  # deeply nested boxes
    ("<answer>" + "{" * 50_000 + "1" + "}" * 50_000 + "</answer>", "format_error"),  # too long an answer
    ("<answer>" + "(" * 400 + "1" + ")" * 400 + "</answer>", None),  # deep but short: sympy's problem
    ("<answer>" * 150_000, "no_answer"),  # 1.2 MB of unclosed tags
    ("x" * 1_000_000 + " \\boxed{3}", "ok"),  # 1 MB completion, answer at the end
    ("\\boxed{3}" + "y" * 1_000_000, "no_answer"),  # the answer clipped away with the head
], ids=["nested-boxes", "long-answer", "deep-parens", "unclosed-tags", "1MB-answer-at-end", "1MB-answer-at-start"])
def test_hostile_inputs_return_within_the_limit(warm_pool, completion, reason):
    verifier = MathVerifier(time_limit=2.0)
    start = time.monotonic()
    verdict = verifier.verify(completion, task("3"))
    assert time.monotonic() - start < 2.0 + 3.0
    if reason is not None:
        assert verdict.reason == reason
    assert verdict.reward == (1.0 if reason == "ok" else 0.0)


def test_works_from_threads_and_is_deterministic(verifier):
    cases = [("<answer>0.5</answer>", "\\frac12"), ("\\boxed{(3, \\pi)}", "(3, \\pi)"), ("<answer>7</answer>", "8")]
    expected = [MathVerifier().verify(c, task(g)) for c, g in cases]
    seen: list[list] = []

    def client() -> None:
        seen.append([MathVerifier().verify(c, task(g)) for c, g in cases])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert seen == [expected] * 4
    assert [v.reward for v in expected] == [1.0, 1.0, 0.0]


def test_cache_is_bounded_and_verifier_pickles():
    verifier = MathVerifier(cache_size=2)
    for n in range(4):
        verifier.verify(f"<answer>{n}</answer>", task("1"))
    assert len(verifier.cache) == 2
    clone = pickle.loads(pickle.dumps(verifier))
    assert len(clone.cache) == 0 and clone.time_limit == verifier.time_limit
    assert clone.verify("<answer>1</answer>", task("1")).reward == 1.0
    with pytest.raises(ValueError, match="time_limit"):
        MathVerifier(time_limit=0)


def test_verify_batch_matches_single_calls(verifier):
    completions = ["<answer>1</answer>", "\\boxed{2}", "nothing", "<answer>1</answer>", "\\boxed{2} \\boxed{3}"]
    tasks = [task("1"), task("3"), task("1"), task("1"), task("2")]
    batch = MathVerifier().verify_batch(completions, tasks)
    assert batch == [verifier.verify(c, t) for c, t in zip(completions, tasks)]
    assert [v.reason for v in batch] == ["ok", "wrong_answer", "no_answer", "ok", "ambiguous"]
    with pytest.raises(ValueError, match="2 completions but 1 tasks"):
        verifier.verify_batch(["a", "b"], [task("1")])


# -- every gold answer of the shared datasets scores 1.0; perturbed ones score 0 ---------------
def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


@pytest.mark.parametrize("name,records", [
    ("gsm8k", "gsm8k_test.jsonl"), ("math500", "math500_test.jsonl"),
    ("aime24", "aime24_test.jsonl"), ("aime25", "aime25_test.jsonl"),
])
def test_dataset_gold_answers_score_and_perturbations_do_not(verifier, name, records):
    env_class = {"gsm8k": rewardgym.envs.math.GSM8KEnv, "math500": rewardgym.envs.math.MATH500Env}.get(
        name, rewardgym.envs.math.AIMEEnv)
    env = env_class(data=data_file(records))
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    rows = read_jsonl(records)
    rationales = [r.get("answer", "").split("####")[0] if name == "gsm8k" else "Step by step." for r in rows]
    verdicts = verifier.verify_batch([as_model_would(t.answer, why) for t, why in zip(tasks, rationales)], tasks)
    failed = [(t.id, t.answer, v.reason) for t, v in zip(tasks, verdicts) if v.reward != 1.0]
    assert not failed, failed[:10]
    numeric = [t for t in tasks if _integer(t.answer) is not None]
    assert len(numeric) >= min(len(tasks), 250)
    wrong = verifier.verify_batch([as_model_would(str(_integer(t.answer) + 1)) for t in numeric], numeric)
    scored = [(t.id, t.answer) for t, v in zip(numeric, wrong) if v.reward != 0.0]
    assert not scored, scored[:10]


def test_math_solutions_boxed_answer_as_gold_agrees_with_the_answer_field(verifier):
    """MATH-style data without an answer field: the gold is the last box of the solution."""
    rows = read_jsonl("math500_test.jsonl")
    env = MathEnv(data=[{"problem": r["problem"], "solution": r["solution"]} for r in rows])
    tasks = [env.task_at(i) for i in range(env.num_tasks)]
    verdicts = verifier.verify_batch([as_model_would(r["answer"]) for r in rows], tasks)
    assert [t.id for t, v in zip(tasks, verdicts) if not v.correct] == []


# -- dataset-backed MathEnv -------------------------------------------------------------------
RECORDS = [
    {"question": "What is 2 + 2?", "answer": "Add them. #### 4"},
    {"question": "What is 1,000 + 234?", "answer": "Add. #### 1,234"},
    {"question": "Half of 1?", "answer": "#### 0.5"},
]


def test_math_env_from_a_list_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), parquet)
    answers = None
    for source in (RECORDS, str(jsonl), jsonl, parquet):
        env = MathEnv(data=source)
        assert env.num_tasks == 3
        got = [env.task_at(i).answer for i in range(3)]
        answers = answers or got
        assert got == answers == ["4", "1234", "0.5"]
    obs, info = env.reset(options={"index": 1})
    assert "1,000 + 234" in obs and info["task"].id == "math-1" and info["task"].meta["index"] == 1
    _, reward, terminated, truncated, info = env.step("<think>sum</think><answer>1234</answer>")
    assert (reward, terminated, truncated, info["verdict"].reason) == (1.0, True, False, "ok")


def test_math_env_seeded_reset_and_field_options():
    records = [{"q": f"What is {i} squared?", "sol": f"It is $\\boxed{{{i * i}}}$.", "key": f"k{i}"} for i in range(20)]
    env = MathEnv(data=records, question_field="q", answer_field="sol", id_field="key", name="squares",
                  template="plain", chat=True)
    first = env.reset(seed=5)[1]["task"]
    assert env.reset(seed=5)[1]["task"] == first
    assert {env.reset(seed=s)[1]["task"].id for s in range(30)} != {first.id}
    t = env.task_at(7)
    assert (t.id, t.answer) == ("squares-k7", "49")
    assert isinstance(t.prompt, list) and t.prompt[-1]["content"] == "What is 7 squared?"
    assert env.step(env.reference(env.reset(options={"index": 7})[1]["task"]))[1] == 1.0
    with pytest.raises(IndexError, match="out of range"):
        env.task_at(20)


@pytest.mark.parametrize("kwargs,match", [
    ({}, "needs data"),
    ({"data": []}, "no records"),
    ({"data": [{"question": "q"}]}, "no answer field found"),
    ({"data": [{"question": "q", "answer": "no marker"}], "answer_format": "gsm8k"}, "record #0: no gsm8k answer"),
    ({"data": [{"question": "q", "answer": "1"}, {"question": "q"}]}, "record #1 has no field 'answer'"),
    ({"data": [{"question": "q", "answer": "1"}], "answer_format": "latex"}, "answer_format must be one of"),
    ({"data": [1, 2]}, "record #0 of the given list is int"),
    ({"data": [{"question": "q", "answer": "1", "k": 1}] * 2, "id_field": "k"}, "record #1: task id 'math-1' repeats"),
    ({"data": [{"question": "q", "answer": "1"}], "meta_fields": ["level"]}, "record #0 has no field 'level'"),
])
def test_math_env_errors_name_the_problem(kwargs, match):
    with pytest.raises((ValueError, DataRequired), match=match):
        MathEnv(**kwargs)


def test_data_files_report_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "1"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_records(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_records(tmp_path / "missing.jsonl")
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown data format"):
        load_records(tmp_path / "d.csv")
    with pytest.raises(DataError, match="hf:owner/name"):
        load_records("hf:")


def test_hub_references_go_to_datasets_load_dataset(monkeypatch):
    import sys
    import types

    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return [{"question": "q", "answer": "#### 7"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    env = gym.make("rewardgym/GSM8K-v0", data=rewardgym.spec("GSM8K-v0").data)
    assert env.unwrapped.task_at(0).answer == "7"
    load_records("hf:HuggingFaceH4/MATH-500::test")
    load_records("hf:owner/name")
    assert calls == [("openai/gsm8k", "main", "test"), ("HuggingFaceH4/MATH-500", None, "test"),
                     ("owner/name", None, "test")]
    with pytest.raises(DataError, match="unknown key"):
        load_records({"hf": "a/b", "revision": "x"})
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(DataError, match="pip install datasets"):
        load_records({"hf": "openai/gsm8k"})


def test_gold_answer_formats():
    assert gold_answer("so 3 + 4 = 7\n#### 7", "gsm8k") == "7"
    assert gold_answer("#### 1,234", "auto") == "1234"
    assert gold_answer("We get $\\boxed{\\frac{1}{2}}$.", "auto") == "\\frac{1}{2}"
    assert gold_answer("\\boxed{1} then \\boxed{2}", "boxed") == "2"
    assert gold_answer(204, "plain") == "204"
    assert gold_answer("", "plain") is None and gold_answer("no box", "boxed") is None


# -- registered ids -----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,file,first_answer", [
    ("rewardgym/GSM8K-v0", "gsm8k_test.jsonl", "18"),
    ("rewardgym/MATH500-v0", "math500_test.jsonl", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("rewardgym/AIME-v0", "aime24_test.jsonl", "204"),
    ("rewardgym/AIME-v0", "aime25_test.jsonl", "70"),
])
def test_registered_dataset_envs(env_id, file, first_answer):
    env = gym.make(env_id, data=str(data_file(file)))
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(options={"index": 0})
    assert info["task"].answer == first_answer and obs
    if env_id == "rewardgym/MATH500-v0":
        assert info["task"].meta == {"index": 0, "source": "math500", "subject": "Precalculus", "level": 2}
    reward = env.step(env.unwrapped.reference(info["task"]))[1]
    assert reward == 1.0
    assert env.reset(seed=11)[1]["task"] == env.reset(seed=11)[1]["task"]


@pytest.mark.parametrize("env_id,where", [
    ("rewardgym/GSM8K-v0", "openai/gsm8k"), ("rewardgym/MATH500-v0", "HuggingFaceH4/MATH-500"),
    ("rewardgym/AIME-v0", "aime"),
])
def test_dataset_ids_without_data_say_where_to_get_it(env_id, where):
    with pytest.raises(DataRequired, match=where):
        gym.make(env_id)
    assert rewardgym.spec(env_id).data["hf"]


# -- procedural math ----------------------------------------------------------------------------
def test_procedural_tasks_are_a_pure_function_of_the_seed():
    a, b = ProceduralMathEnv(difficulty=[1, 5]), ProceduralMathEnv(difficulty=[1, 5])
    for seed in range(40):
        assert a.generate(seed).fingerprint() == b.generate(seed).fingerprint()
    skills = {a.generate(seed).meta["skill"] for seed in range(200)}
    assert skills == set(SKILLS)
    assert a.generate(3) != a.generate(4)


def test_procedural_tasks_agree_across_processes_and_hash_seeds():
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import hashlib; from rewardgym.envs.math import ProceduralMathEnv as E; e = E(difficulty=[1, 5]); "
            "print(hashlib.sha256(''.join(e.generate(s).fingerprint() for s in range(120)).encode()).hexdigest())")
    env = ProceduralMathEnv(difficulty=[1, 5])
    here = hashlib.sha256("".join(env.generate(s).fingerprint() for s in range(120)).encode()).hexdigest()
    root = str(Path(__file__).resolve().parents[1])
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed,
                                  "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])})
        assert out.stdout.strip() == here


def test_procedural_references_score_full_reward_for_every_skill_and_level(verifier):
    tasks = [ProceduralMathEnv(skills=[skill], difficulty=level).generate(seed)
             for skill in SKILLS for level in LEVELS for seed in range(3)]
    env = ProceduralMathEnv()
    verdicts = verifier.verify_batch([env.reference(t) for t in tasks], tasks)
    failed = [(t.meta["skill"], t.meta["difficulty"], t.answer, v.reason)
              for t, v in zip(tasks, verdicts) if not v.correct]
    assert not failed, failed
    wrong = verifier.verify_batch([f"<answer>{t.answer} + 1</answer>" for t in tasks], tasks)
    assert all(v.reward == 0.0 for v in wrong)


def test_procedural_difficulty_changes_the_problems():
    easy = ProceduralMathEnv(skills=["fractions"], difficulty=1)
    hard = ProceduralMathEnv(skills=["fractions"], difficulty=5)
    assert easy.generate(0).meta["difficulty"] == 1 and hard.generate(0).meta["difficulty"] == 5
    assert sum(len(hard.generate(s).prompt) for s in range(10)) > sum(len(easy.generate(s).prompt) for s in range(10))


@pytest.mark.parametrize("kwargs,match", [
    ({"skills": ["topology"]}, "unknown or no skills"), ({"skills": []}, "unknown or no skills"),
    ({"difficulty": 0}, "difficulty"), ({"difficulty": [4, 2]}, "difficulty"),
])
def test_procedural_knobs_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProceduralMathEnv(**kwargs)


def test_math_v0_is_registered_and_passes_check_env():
    env = rewardgym.make("Math-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert "<answer>" in obs and info["task"].id == "math-1"
    assert env.step(env.unwrapped.reference(info["task"]))[1] == 1.0
    assert rewardgym.spec("Math-v0").data is None
