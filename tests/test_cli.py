"""The rewardgym command, run as a user would (a real subprocess for the console entry)."""

from __future__ import annotations

import json
import subprocess
import sys

from rewardgym.cli import main


def test_list_shows_ids_descriptions_tags(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "rewardgym/Countdown-v0" in out and "[arithmetic, procedural]" in out and "exactly once" in out


def test_list_json_and_tag_filter(capsys) -> None:
    assert main(["list", "--json", "--tag", "format"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data and all("format" in e["tags"] for e in data)


def test_check_one_id_passes(capsys) -> None:
    assert main(["check", "Countdown-Easy-v0", "--fast"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_unknown_id_is_a_clear_error(capsys) -> None:
    assert main(["check", "Countdwn-v0"]) == 2
    assert "did you mean rewardgym/Countdown-v0" in capsys.readouterr().err


def test_python_dash_m_and_demo() -> None:
    proc = subprocess.run([sys.executable, "-m", "rewardgym", "demo", "--seed", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "reward 1.0 (ok)" in proc.stdout and "reward 0.0 (no_answer)" in proc.stdout
