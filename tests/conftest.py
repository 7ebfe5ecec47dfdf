"""Shared fixtures: where the public datasets live, and data kwargs for dataset-backed envs."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Dataset-backed env ids and the shared file each is checked on (the package never reads these).
DATASET_FILES = {
    "rewardgym/GSM8K-v0": "gsm8k_test.jsonl",
    "rewardgym/MATH500-v0": "math500_test.jsonl",
    "rewardgym/AIME-v0": "aime24_test.jsonl",
    "rewardgym/HumanEval-v0": "HumanEval.jsonl.gz",
    "rewardgym/MBPP-v0": "mbpp_test_deepseek.jsonl",
}


def dataset_kwargs() -> dict[str, dict]:
    return {env_id: {"data": str(SHARED_DATA / name)} for env_id, name in DATASET_FILES.items()
            if (SHARED_DATA / name).exists()}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA
