"""The one loader for every YAML (and JSON) file drillbit reads: experiments, SLA files, load
profiles, suites, drill.yaml, the sandbox topology.

Whatever the bytes, the result is either a document or one ``ConfigError`` line naming the file:
a regular file only (``drillbit.core.safeio``), UTF-8 only, no duplicate key (YAML would silently keep
the last one), no deeper than ``MAX_DEPTH`` levels, no more than ``MAX_NODES`` values once
aliases are expanded, and finite numbers are left to the models that read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from drillbit.core.errors import ConfigError, validation_problems
from drillbit.core.safeio import read_text

__all__ = [
    "MAX_DEPTH", "MAX_NODES", "UniqueKeyLoader", "check_shape", "load_document", "load_model_file", "parse_json",
    "parse_yaml",
]  # fmt: skip

M = TypeVar("M", bound=BaseModel)

#: deeper than any file drillbit reads needs; far below Python's recursion limit
MAX_DEPTH = 64
#: values in one document, aliases expanded (a "billion laughs" document stops here)
MAX_NODES = 200_000


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # its own keys: a merge (<<: *base) may be overridden
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise ConstructorError(None, None, "a mapping key must be a plain value, not a list or mapping",
                                           key_node.start_mark) from None  # fmt: skip
                if key in seen:
                    raise ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1}): keep one of them",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    problem = " ".join(str(getattr(err, "problem", None) or err).split())
    if problem.startswith("duplicate key"):
        return f"{where}{problem}"
    column = f"column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML ({column}{problem}): fix the syntax"


def check_shape(data: Any, source: str) -> Any:
    """``data`` unless it nests deeper than ``MAX_DEPTH`` or holds more than ``MAX_NODES`` values."""
    seen = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(source, f"more than {MAX_NODES} values (with YAML aliases expanded): simplify it")
        if depth > MAX_DEPTH:
            raise ConfigError(source, f"nested deeper than {MAX_DEPTH} levels: flatten it")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value if isinstance(k, tuple))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)
    return data


def parse_yaml(text: str, source: str) -> Any:
    """A YAML document (one) from ``text``; every problem is one ConfigError line naming ``source``."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except RecursionError:
        raise ConfigError(source, f"nested deeper than {MAX_DEPTH} levels: flatten it") from None
    except yaml.YAMLError as err:
        raise ConfigError(source, _yaml_problem(err)) from None
    except (ValueError, TypeError, OverflowError) as err:  # a scalar PyYAML's constructors cannot build
        raise ConfigError(source, f"not valid YAML ({' '.join(str(err).split())}): fix the value") from None
    return check_shape(data, source)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}: keep one of them")
        out[key] = value
    return out


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows: use a finite number")


def parse_json(text: str, source: str, *, allow_nan: bool = False) -> Any:
    """A JSON document from ``text`` (no duplicate keys; NaN/Infinity only with ``allow_nan``, for
    records whose reader says what it made of them); one ConfigError line otherwise."""
    try:
        constant = None if allow_nan else _no_constant
        data = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=constant)
    except RecursionError:
        raise ConfigError(source, f"nested deeper than {MAX_DEPTH} levels: flatten it") from None
    except json.JSONDecodeError as err:
        raise ConfigError(source, f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}): "
                                  "fix the syntax") from None  # fmt: skip
    except ValueError as err:
        raise ConfigError(source, str(err)) from None
    return check_shape(data, source)


def load_document(path: Path, *, missing: str) -> Any:
    """Read ``path`` (``.json``: JSON, else YAML). ``missing``: what to say when it does not exist."""
    path = Path(path)
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise ConfigError(str(path), missing) from None
    if path.suffix.lower() == ".json":
        return parse_json(text, str(path))
    return parse_yaml(text, str(path))


def load_model_file(path: Path, model: type[M], *, missing: str, shape: str) -> M:
    """Read a YAML file into ``model``; every problem is a ConfigError naming the file (``missing``:
    what to say when it does not exist; ``shape``: the top-level keys it should have)."""
    data = load_document(path, missing=missing)
    if not isinstance(data, dict):
        raise ConfigError(str(path), f"expected a mapping ({shape})")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), validation_problems(err)) from None
