"""Targets (drivers) drillbit can exercise, and how a name resolves to one.

``sandbox`` is built in. Other targets are named in a targets file (``drill.yaml`` at the
working directory, or ``$DRILL_CONFIG``)::

    targets:
      staging-eks: {kind: kubernetes, context: staging-eks, namespace: trading}

The allowlist is the file itself: drillbit refuses a Kubernetes context that is not the one
configured for the target name, so a drill never lands on whatever cluster kubectl points at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drillbit.errors import ConfigError, validation_problems
from drillbit.targets.base import Endpoints, Target

__all__ = [
    "Endpoints",
    "Target",
    "TargetSpec",
    "TargetsFile",
    "check_kube_context",
    "check_target_name",
    "load_targets",
    "resolve_target",
]

DEFAULT_CONFIG = "drill.yaml"


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["sandbox", "kubernetes", "aws"]
    state_dir: str | None = Field(default=None, min_length=1)  # sandbox
    context: str | None = Field(default=None, min_length=1)  # kubernetes: the only context this target may use
    kubeconfig: str | None = Field(default=None, min_length=1)
    namespace: str | None = Field(default=None, min_length=1)
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")  # aws: the only account this target may use
    region: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _allowlisted(self) -> TargetSpec:
        # the allowlist: a drill never lands on whatever the client's default points at
        if self.kind == "kubernetes" and not self.context:
            raise ValueError("context: required for a kubernetes target: name the only kubeconfig context it may use")
        return self


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: dict[str, TargetSpec] = {}


def load_targets(path: Path | None = None) -> tuple[Path, TargetsFile]:
    from drillbit.yamlio import load_document

    named = path or (Path(os.environ["DRILL_CONFIG"]) if os.environ.get("DRILL_CONFIG") else None)
    source = named or Path(DEFAULT_CONFIG)
    if named is None and not os.path.lexists(source):
        return source, TargetsFile()
    fix = "set DRILL_CONFIG to an existing file or unset it" if path is None else "pass an existing file"
    data = load_document(source, missing=f"no such targets file: {fix}")
    if data is None:
        return source, TargetsFile()
    if not isinstance(data, dict):
        raise ConfigError(str(source), "expected a mapping (targets:)")
    try:
        return source, TargetsFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(source), validation_problems(err)) from None


def check_kube_context(name: str, spec: TargetSpec, source: Path) -> str:
    """The kubeconfig's context to use; refuses one that is not the target's configured context."""
    from kubernetes import config as kube_config

    if not spec.context:
        raise ConfigError(str(source), f"targets.{name}.context: required for a kubernetes target: name the context")
    try:
        contexts, _current = kube_config.list_kube_config_contexts(config_file=spec.kubeconfig)
    except (kube_config.ConfigException, OSError) as err:
        raise ConfigError(spec.kubeconfig or "~/.kube/config", f"cannot read the kubeconfig: {err}") from None
    names = [c["name"] for c in contexts]
    if spec.context not in names:
        raise ConfigError(
            str(source), f"targets.{name}.context: {spec.context!r} is not in the kubeconfig (has: {', '.join(names)})"
        )
    # the configured context is used explicitly, whatever kubectl's current context is
    return spec.context


def check_target_name(name: str, config: Path | None = None) -> None:
    """Raise ConfigError for a target name that is neither sandbox nor in the targets file."""
    source, targets = load_targets(config)
    if name != "sandbox" and name not in targets.targets:
        known = ", ".join(["sandbox", *sorted(targets.targets)])
        raise ConfigError("--env", f"unknown target {name!r}: use one of {known} (targets come from {source})")


def resolve_target(name: str, *, state_dir: Path | str | None = None, config: Path | None = None) -> Target:
    """The target named ``name``: ``sandbox`` or an entry of the targets file."""
    source, targets = load_targets(config)
    spec = targets.targets.get(name) or (TargetSpec(kind="sandbox") if name == "sandbox" else None)
    if spec is None:
        known = ", ".join(["sandbox", *sorted(targets.targets)])
        raise ConfigError("--env", f"unknown target {name!r}: use one of {known} (targets come from {source})")
    if spec.kind == "sandbox":
        from drillbit.targets.sandbox.driver import SandboxTarget

        return SandboxTarget.attach(state_dir or spec.state_dir, name)
    if spec.kind == "kubernetes":
        check_kube_context(name, spec, source)
    raise ConfigError(
        str(source), f"targets.{name}.kind: the {spec.kind} driver is not available in this version: use the sandbox"
    )

