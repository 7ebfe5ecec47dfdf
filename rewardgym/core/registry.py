"""Loading and validating registry.yaml, the catalogue of environment ids.

Every problem is reported with the file, the entry (its index, line and id) and the field,
because contributors edit this file by hand in pull requests.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIELDS = {"id", "entry_point", "kwargs", "verifier", "description", "tags", "data"}
REQUIRED = ("id", "entry_point", "verifier", "description")
ID_PATTERN = re.compile(r"^rewardgym/[A-Za-z][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*-v\d+$")
OBJECT_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class RegistryError(ValueError):
    """A malformed registry file; the message names file, entry and field."""


@dataclass(frozen=True)
class EnvEntry:
    id: str
    entry_point: str
    verifier: str
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    data: Any = None
    source: str = ""

    @property
    def name(self) -> str:
        """The id without namespace, e.g. ``Countdown-v0``."""
        return self.id.split("/", 1)[1]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def load_registry(path: str | Path) -> list[EnvEntry]:
    """Parse and validate a registry file; raises RegistryError on the first problem found."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RegistryError(f"{path}: the registry must be a YAML list of entries, got {type(raw).__name__}")
    entries: list[EnvEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        entry = _validate(path, index, item)
        if entry.id in seen:
            raise RegistryError(f"{path}: entry #{index} ({entry.id}), field 'id': duplicate id, "
                                f"first defined at entry #{seen[entry.id]}")
        seen[entry.id] = index
        entries.append(entry)
    return entries


def _validate(path: Path, index: int, item: Any) -> EnvEntry:
    if not isinstance(item, dict):
        raise RegistryError(f"{path}: entry #{index}: must be a mapping of fields, got {type(item).__name__}")
    line = item.pop("__line__", "?")
    label = item.get("id", "<no id>")

    def fail(field_name: str, problem: str) -> RegistryError:
        return RegistryError(f"{path}:{line}: entry #{index} ({label}), field '{field_name}': {problem}")

    for name in item:
        if name not in FIELDS:
            raise fail(name, f"unknown field; allowed fields are {sorted(FIELDS)}")
    for name in REQUIRED:
        if item.get(name) in (None, ""):
            raise fail(name, "missing (required)")
    for name in ("id", "entry_point", "verifier", "description"):
        if not isinstance(item[name], str):
            raise fail(name, f"must be a string, got {type(item[name]).__name__}")
    if not ID_PATTERN.match(item["id"]):
        raise fail("id", "must look like 'rewardgym/Name-vN' (namespace rewardgym, a name, a version suffix -v<integer>)")
    for name in ("entry_point", "verifier"):
        if not OBJECT_PATTERN.match(item[name]):
            raise fail(name, f"must be 'package.module:Object', got {item[name]!r}")
    kwargs = _strip_lines(item.get("kwargs") or {})
    if not isinstance(kwargs, dict):
        raise fail("kwargs", f"must be a mapping, got {type(kwargs).__name__}")
    tags = item.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags", "must be a list of strings")
    return EnvEntry(id=item["id"], entry_point=item["entry_point"], verifier=item["verifier"],
                    description=" ".join(item["description"].split()), kwargs=kwargs, tags=tuple(tags),
                    data=_strip_lines(item.get("data")), source=f"{path}:{line}")


def load_object(spec: str, *, where: str = "object") -> Any:
    """Import ``package.module:Object``; errors say which reference failed and why."""
    if not isinstance(spec, str) or not OBJECT_PATTERN.match(spec):
        raise ValueError(f"{where}: expected 'package.module:Object', got {spec!r}")
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"{where}: cannot import module {module_name!r} ({exc})") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{where}: module {module_name!r} has no attribute {attr!r}") from None
    return obj
