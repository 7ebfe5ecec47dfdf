"""Where evaluation rows live: one Parquet row per sample, written so that a crash loses at most
the chunk in flight and never leaves a half-written file.

While a run is going, each finished chunk is an atomically written shard in ``OUT.parts/``
(beside ``OUT``), next to ``manifest.json`` holding the run's key. A rerun with the same key skips
the shards already there; at the end the shards are joined into ``OUT`` (written to a temporary
file, then renamed), and the parts directory is removed. ``OUT`` carries the key in its Parquet
metadata, which is how a later run tells its own output from a user's file it must not replace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"rewardgym.eval"

#: One row per sample. ``parsed`` is the verdict's parsed answer as canonical JSON (null when nothing
#: was parsed); ``time_*`` are the seconds of the sample's chunk divided evenly among its samples.
SCHEMA = pa.schema([
    ("model", pa.string()), ("step", pa.int64()), ("env_id", pa.string()), ("task_id", pa.string()),
    ("task_index", pa.int64()), ("sample", pa.int64()), ("prompt", pa.string()), ("completion", pa.string()),
    ("reward", pa.float64()), ("reward_components", pa.map_(pa.string(), pa.float64())), ("correct", pa.bool_()),
    ("reason", pa.string()), ("parsed", pa.string()), ("completion_tokens", pa.int64()), ("truncated", pa.bool_()),
    ("time_generate", pa.float64()), ("time_verify", pa.float64()),
])


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(table: pa.Table, path: Path, meta: dict[str, Any] | None = None) -> None:
    """Write ``table`` atomically, with ``meta`` (JSON) under the rewardgym key of the file metadata."""
    if meta is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_json(data: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def parquet_meta(path: Path) -> dict[str, Any] | None:
    """The rewardgym metadata of a Parquet file; None when it has none or is not Parquet at all."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return None
    raw = metadata.get(META_KEY)
    return json.loads(raw) if raw else None


def hash_file(digest: "hashlib._Hash", path: Path) -> None:
    """Feed a file's bytes to ``digest`` a block at a time (model weights can be gigabytes)."""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def rows_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def owned(path: Path, key: str) -> bool:
    """Whether ``path`` is missing or was written by a run with ``key``; any other existing file is
    the user's and raises, naming it."""
    if not path.exists():
        return False
    if path.suffix == ".json":
        try:
            found = json.loads(path.read_text(encoding="utf-8")).get("key")
        except (ValueError, AttributeError, UnicodeDecodeError):
            found = None
    else:
        found = (parquet_meta(path) or {}).get("key")
    if found != key:
        what = "an evaluation with other settings" if found else "not written by `rewardgym eval`"
        raise FileExistsError(f"{path} exists and is {what}; refusing to overwrite it: "
                              "choose another --out or move the file away")
    return True


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def summary_paths(out: Path) -> tuple[Path, Path]:
    """The JSON summary and the PNG plot that go beside ``out``."""
    return out.with_suffix(".json"), out.with_suffix(".png")


def check_outputs(out: Path, key: str, extra: Sequence[Path] = ()) -> bool:
    """Fail early when any file this run would write belongs to someone else; True when ``out`` is
    already this run's finished result. The PNG carries no key: it may be replaced only beside this
    run's own JSON summary."""
    summary, plot = summary_paths(out)
    for path in extra:
        owned(path, key)
    if plot.exists() and not owned(summary, key):
        raise FileExistsError(f"{plot} exists and is not this evaluation's plot; refusing to overwrite it: "
                              "choose another --out or move the file away")
    owned(summary, key)
    return owned(out, key)


class Shards:
    """The parts directory of one run: a manifest with the key, and one Parquet shard per chunk."""

    def __init__(self, out: Path, key: str, settings: dict[str, Any]):
        self.dir = parts_dir(out)
        manifest = self.dir / "manifest.json"
        if manifest.is_file():
            for debris in self.dir.glob(".*.tmp"):  # a shard being written when the last run died
                debris.unlink()
            found = json.loads(manifest.read_text(encoding="utf-8"))
            if found.get("key") != key and any(self.dir.glob("*.parquet")):
                raise FileExistsError(f"{self.dir} holds an unfinished evaluation with other settings or other model "
                                      f"files ({found.get('settings')}); rerun that command to finish it, or delete "
                                      "the directory to start this one")
        elif self.dir.exists():
            raise FileExistsError(f"{self.dir} exists and was not made by `rewardgym eval`; move it away")
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json({"key": key, "settings": settings}, manifest)  # a run that saved nothing yet is replaced

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.parquet"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def write(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        write_parquet(rows_table(rows), self.path(name))

    def join(self, names: Sequence[str]) -> pa.Table:
        """All shards, in the order of ``names`` (every one must exist)."""
        tables = [pq.read_table(self.path(n)) for n in names]
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def remove(self) -> None:
        shutil.rmtree(self.dir)

    @staticmethod
    def discard(out: Path, key: str) -> None:
        """Remove the parts directory of ``out``'s finished run with ``key`` (left by a crash right
        after the final rename); any other parts directory stays."""
        directory = parts_dir(out)
        manifest = directory / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get("key") == key:
            shutil.rmtree(directory)
