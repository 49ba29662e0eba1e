"""The kubernetes kind: its drill.yaml fields and its identity check (the context allowlist).

A kubernetes target names the one kubeconfig context it may use. drillbit uses exactly that
context, whatever kubectl's current context is, and refuses one the kubeconfig does not have, so a
drill never lands on whatever cluster kubectl points at. The driver that injects faults and
samples a cluster comes with the Kubernetes target issue; until then attaching says so (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.errors import ConfigError
from drillbit.targets.base import Target

__all__ = ["KubernetesKind", "KubernetesSpec", "check_kube_context"]


class KubernetesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: str = Field(min_length=1)  # the only kubeconfig context this target may use
    kubeconfig: str | None = Field(default=None, min_length=1)
    namespace: str | None = Field(default=None, min_length=1)


def check_kube_context(name: str, spec: KubernetesSpec, source: str) -> str:
    """The kubeconfig's context to use; refuses one that is not the target's configured context."""
    from kubernetes import config as kube_config  # the kubernetes client is imported by this kind only

    try:
        contexts, _current = kube_config.list_kube_config_contexts(config_file=spec.kubeconfig)
    except (kube_config.ConfigException, OSError) as err:
        raise ConfigError(spec.kubeconfig or "~/.kube/config", f"cannot read the kubeconfig: {err}") from None
    names = [c["name"] for c in contexts]
    if spec.context not in names:
        raise ConfigError(source, f"targets.{name}.context: {spec.context!r} is not in the kubeconfig "
                                  f"(has: {', '.join(names)})")  # fmt: skip
    return spec.context  # used explicitly, whatever kubectl's current context is


class KubernetesKind:
    name = "kubernetes"
    spec_model = KubernetesSpec

    def check_identity(self, name: str, spec: KubernetesSpec, source: str) -> None:
        check_kube_context(name, spec, source)

    def _unavailable(self, name: str, source: str) -> NoReturn:
        raise ConfigError(source, f"targets.{name}.kind: the kubernetes driver is not available in this version: "
                                  "use the sandbox")  # fmt: skip

    def attach(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> Target:
        self._unavailable(name, "drill.yaml")

    def is_up(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> bool:
        self._unavailable(name, "drill.yaml")

    def up(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None,
           report: Callable[[str], None]) -> Target:  # fmt: skip
        self._unavailable(name, "drill.yaml")

    def down(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None,
             report: Callable[[str], None]) -> None:  # fmt: skip
        self._unavailable(name, "drill.yaml")

    def status(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> dict[str, Any]:
        self._unavailable(name, "drill.yaml")
