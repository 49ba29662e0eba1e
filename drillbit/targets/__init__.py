"""Targets drillbit can exercise: kinds are plugins, targets are named in the project's drill.yaml.

A *kind* (``sandbox``, ``kubernetes``, ...) is registered in the ``drillbit.targets`` entry-point
group (drillbit's own kinds too, see pyproject.toml), so another package adds a kind without
editing drillbit. A *target* is a name in the drill project's ``drill.yaml`` (or the file
``$DRILL_CONFIG`` names) with its kind and the kind's fields::

    targets:
      staging-eks: {kind: kubernetes, context: staging-eks, namespace: trading}

``sandbox`` is always a target, of kind sandbox, with its defaults (and ``sandbox-k8s``: the
sandbox served as a Kubernetes API, drilled through the kubernetes driver). Before anything touches a
target, its kind checks that it is exactly the one drill.yaml names (the allowlist: a Kubernetes
context, an AWS account), so a drill never lands on whatever kubectl or the AWS profile points at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drillbit.core.errors import ConfigError, EnvironmentFailure, validation_problems
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_document
from drillbit.targets.base import Endpoints, Target, TargetKind

__all__ = [
    "GROUP",
    "Endpoints",
    "ResolvedTarget",
    "Target",
    "TargetKind",
    "check_target_name",
    "env_down",
    "env_status",
    "env_up",
    "is_up",
    "load_kind",
    "load_section",
    "load_targets",
    "registered_kinds",
    "resolve",
    "resolve_target",
]

GROUP = "drillbit.targets"
BUILTIN = "sandbox"  # always a target name, of this kind, with the kind's defaults
BUILTINS = (BUILTIN, "sandbox-k8s")
#: drill.yaml's top-level keys: the targets, and settings of other parts of drillbit
SECTIONS = ("targets", "grafana")  # the same: the sandbox, and the sandbox drilled through a Kubernetes API


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def registered_kinds() -> list[str]:
    return sorted(_entry_points())


def load_kind(kind: str) -> TargetKind:
    """The registered kind ``kind``, loaded (its module is imported only now)."""
    eps = _entry_points()
    if kind not in eps:
        if not eps:
            raise EnvironmentFailure(f"no target kinds are registered (entry-point group {GROUP}): reinstall drillbit")
        raise ConfigError("kind", f"unknown target kind {kind!r}: use one of {', '.join(sorted(eps))}")
    loaded: TargetKind = eps[kind].load()()
    return loaded


@dataclass(frozen=True)
class ResolvedTarget:
    name: str
    kind: TargetKind
    spec: Any  # an instance of kind.spec_model
    source: str  # the drill.yaml it comes from


def _config_path(path: Path | None) -> tuple[Path, bool]:
    """The targets file, and whether it was named (a named file must exist)."""
    if path is not None:
        return path, True
    if os.environ.get("DRILL_CONFIG"):
        return Path(os.environ["DRILL_CONFIG"]), True
    return current_project().config_file, False


def load_targets(path: Path | None = None) -> tuple[Path, dict[str, ResolvedTarget]]:
    """Every target of the targets file, validated (every problem in one ConfigError)."""
    source, named = _config_path(path)
    if not named and not os.path.lexists(source):
        return source, {}
    fix = "pass an existing file" if path is not None else "set DRILL_CONFIG to an existing file or unset it"
    data = load_document(source, missing=f"no such targets file: {fix}")
    if data is None:
        return source, {}
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ConfigError(str(source), "expected a mapping of targets: (NAME: {kind: KIND, ...}) and optionally "
                                       "grafana: ({url: ..., token_env: ...})")  # fmt: skip
    entries = data.get("targets") or {}
    if not isinstance(entries, dict):
        raise ConfigError(str(source), "targets: expected a mapping of target names to {kind: KIND, ...}")
    problems: list[str] = []
    targets: dict[str, ResolvedTarget] = {}
    kinds = registered_kinds()
    for name, entry in entries.items():
        where = f"targets.{name}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping ({{kind: KIND, ...}})")
            continue
        fields = dict(entry)
        kind_name = fields.pop("kind", None)
        if not isinstance(kind_name, str) or kind_name not in kinds:
            problems.append(f"{where}.kind: {'required' if kind_name is None else f'unknown kind {kind_name!r}'}: "
                            f"use one of {', '.join(kinds)}")  # fmt: skip
            continue
        kind = load_kind(kind_name)
        try:
            spec = kind.spec_model.model_validate(fields)
        except ValidationError as err:
            problems += [f"{where}.{p}" for p in validation_problems(err)]
            continue
        targets[str(name)] = ResolvedTarget(str(name), kind, spec, str(source))
    if problems:
        raise ConfigError(str(source), problems)
    return source, targets


def load_section(name: str, path: Path | None = None) -> tuple[Path, Any]:
    """drill.yaml's top-level ``name`` section as parsed (None when absent), and the file it is in;
    the module the section belongs to validates it (``grafana``: drillbit.annotations.GrafanaConfig)."""
    source, named = _config_path(path)
    if not named and not os.path.lexists(source):
        return source, None
    load_targets(path)  # the file's shape first: one error for a file that is wrong as a whole
    data = load_document(source, missing="no such targets file")
    return source, data.get(name) if isinstance(data, dict) else None


def resolve(name: str, config: Path | None = None) -> ResolvedTarget:
    """The target called ``name``: an entry of the targets file, or the built-in sandbox."""
    source, targets = load_targets(config)
    if name in targets:
        return targets[name]
    if name in BUILTINS:
        kind = load_kind(name)
        return ResolvedTarget(name, kind, kind.spec_model(), str(source))
    known = ", ".join(sorted({*BUILTINS, *targets}))
    raise ConfigError("--env", f"unknown target {name!r}: use one of {known} (targets come from {source})")


def check_target_name(name: str, config: Path | None = None) -> None:
    """Raise ConfigError for a target name that is neither sandbox nor in the targets file."""
    resolve(name, config)


def _identified(name: str, config: Path | None) -> ResolvedTarget:
    target = resolve(name, config)
    target.kind.check_identity(target.name, target.spec, target.source)  # before anything touches it
    return target


def resolve_target(name: str, *, state_dir: Path | str | None = None, config: Path | None = None) -> Target:
    """The running target called ``name``, its identity checked."""
    t = _identified(name, config)
    return t.kind.attach(t.name, t.spec, state_dir)


def is_up(name: str, *, state_dir: Path | str | None = None, config: Path | None = None) -> bool:
    t = _identified(name, config)
    return t.kind.is_up(t.name, t.spec, state_dir)


def env_up(name: str, *, state_dir: Path | str | None = None, config: Path | None = None,
           report: Callable[[str], None] = print, **overrides: Any) -> Target:  # fmt: skip
    """Bring the target up; ``overrides``: fields of its spec given on the command line (``topology``)."""
    t = _identified(name, config)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(type(t.spec).model_fields))
    if unknown:
        raise ConfigError("drill env up", f"--{unknown[0]} does not apply to a {t.kind.name} target: remove it")
    spec = t.spec.model_copy(update={k: v if isinstance(v, bool) else str(v) for k, v in given.items()})
    return t.kind.up(t.name, spec, state_dir, report)


def env_down(name: str, *, state_dir: Path | str | None = None, config: Path | None = None,
             report: Callable[[str], None] = print) -> None:  # fmt: skip
    t = _identified(name, config)
    t.kind.down(t.name, t.spec, state_dir, report)


def env_status(name: str, *, state_dir: Path | str | None = None, config: Path | None = None) -> dict[str, Any]:
    t = _identified(name, config)
    return {"target": t.name, "kind": t.kind.name, **t.kind.status(t.name, t.spec, state_dir)}
