"""The contributor scaffold: a new env is green in the conformance suite as generated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rewardgym
from rewardgym.scaffold import new_env

PACKAGE = Path(rewardgym.__file__).parent


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "rewardgym", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_generated_env_passes_conformance(tmp_path) -> None:
    root = _copy(tmp_path)
    written = new_env("WordSort", root)
    assert {p.name for p in written} == {"word_sort.py", "word_sort.yaml", "registry.yaml"}
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "rewardgym", "check", "WordSort-v0"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rewardgym/WordSort-v0" in proc.stdout and "0 failed" in proc.stdout


def test_scaffold_never_overwrites(tmp_path) -> None:
    root = _copy(tmp_path)
    new_env("WordSort", root)
    with pytest.raises(FileExistsError, match="already in"):
        new_env("WordSort", root)
    (root / "rewardgym" / "envs" / "abc.py").write_text("mine")
    with pytest.raises(FileExistsError, match="will not overwrite"):
        new_env("Abc", root)
    assert (root / "rewardgym" / "envs" / "abc.py").read_text() == "mine"
    with pytest.raises(ValueError, match="CamelCase"):
        new_env("word sort", root)


def test_missing_examples_fail_with_what_to_add(tmp_path) -> None:
    root = _copy(tmp_path)
    new_env("WordSort", root)
    (root / "rewardgym" / "examples" / "word_sort.yaml").unlink()
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "rewardgym", "check", "WordSort-v0", "--fast"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "add rewardgym/examples/word_sort.yaml" in proc.stdout
