"""Loading dataset records for dataset-backed environments.

A source is one of: a list of dicts; a path to ``.jsonl`` / ``.jsonl.gz`` / ``.json`` (a list)
/ ``.parquet``; or a Hugging Face dataset reference, ``{"hf": "openai/gsm8k", "config": "main",
"split": "test"}`` or the string ``"hf:openai/gsm8k:main:test"`` (needs the ``datasets``
package and network or a local HF cache). Every error names the source and, for files, the line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Records = list[dict[str, Any]]


class DataError(ValueError):
    """A data source that cannot be read; the message names file, line or record."""


def load_records(source: Any) -> Records:
    """The records of ``source`` as a list of dicts (see the module docstring for the forms)."""
    if isinstance(source, Mapping) and "hf" in source:
        return _from_hub(dict(source))
    if isinstance(source, str) and source.startswith("hf:"):
        parts = source[3:].split(":")
        if not 1 <= len(parts) <= 3 or not parts[0]:
            raise DataError(f"hub reference {source!r} must look like 'hf:owner/name[:config[:split]]'")
        return _from_hub({"hf": parts[0], "config": (parts[1:2] or [None])[0] or None,
                          "split": (parts[2:3] or ["test"])[0]})
    if isinstance(source, (str, Path)):
        return _from_file(Path(source))
    if isinstance(source, (list, tuple)):
        for i, record in enumerate(source):
            if not isinstance(record, Mapping):
                raise DataError(f"record #{i} of the given list is {type(record).__name__}, expected a dict")
        return [dict(r) for r in source]
    raise DataError(f"cannot read data from {type(source).__name__}; give a path (.jsonl, .json, .parquet), "
                    "a list of dicts or {'hf': 'owner/name', 'config': ..., 'split': ...}")


def _from_file(path: Path) -> Records:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        records = []
        with opener(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                records.append(record)
        return records
    if name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
        return load_records(data)
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    raise DataError(f"{path}: unknown data format; use .jsonl, .jsonl.gz, .json or .parquet")


def _from_hub(ref: dict[str, Any]) -> Records:
    unknown = set(ref) - {"hf", "config", "split"}
    if unknown:
        raise DataError(f"hub reference {ref}: unknown key(s) {sorted(unknown)}; allowed: hf, config, split")
    try:
        import datasets
    except ImportError:
        raise DataError(f"loading {ref['hf']!r} from the Hugging Face Hub needs the 'datasets' package "
                        "(pip install datasets); or download it and pass data=<path to .jsonl/.parquet>") from None
    try:
        dataset = datasets.load_dataset(ref["hf"], ref.get("config"), split=ref.get("split") or "test")
    except Exception as exc:  # noqa: BLE001 - network, auth and naming errors all end here
        raise DataError(f"could not load {ref} from the Hugging Face Hub: {exc}") from exc
    return [dict(r) for r in dataset]
