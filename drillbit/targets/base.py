"""The target protocol: what every driver (sandbox, kubernetes, aws) offers a drill.

Portable fault actions (``drillbit.faults``) and the drill runner talk to a target only through
this protocol, so one experiment file runs on every target. A fault method returns JSON-friendly
facts including ``landed``: whether the target *verified* that the fault took effect (the replica
really died, the primary really changed). ``heal`` undoes every lasting fault (a lost region, a
node left down) and is idempotent: the runner calls it after every drill, interrupted or not,
and a later invocation calls it for a drill that crashed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

__all__ = ["Endpoints", "Target", "TargetKind"]


@dataclass(frozen=True)
class Endpoints:
    api_url: str  # the service's base URL (front door / ingress / load balancer)
    dsn: str | None = None  # database DSN: the RPO read-back (and the heartbeat, when heartbeat_via="database")
    heartbeat_via: str = "api"  # "api": acknowledged orders through the service; "database": direct inserts
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    # host:port where the drill runs its Alertmanager webhook receiver (drillbit.probes.alerts);
    # None: the target has no Alertmanager wired to drillbit (the alert SLAs are then INCONCLUSIVE)
    alert_receiver: str | None = None


class Target(Protocol):
    name: str  # as configured (e.g. "sandbox", "staging-eks")
    kind: str  # driver: sandbox | kubernetes | aws

    def endpoints(self) -> Endpoints: ...

    def dry_run(self) -> list[dict[str, Any]]:
        """Each kind of change a drill makes, checked by the target without making it (a Kubernetes
        API's server-side dry run): rows of change, object, ok, error; [] when it cannot ask."""
        ...

    def activity_scope(self) -> AbstractContextManager[None]:
        """Entered while the experiment runs: points the target's own Chaos Toolkit extension
        (chaosk8s reads ``KUBECONFIG`` and ``KUBERNETES_CONTEXT``) at exactly this target, so a
        plain activity never lands on whatever the shell's kubeconfig points at."""
        ...

    def state_dir(self) -> str:
        """Where the target's own state lives (the faults and a later clean-up act on exactly it)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """Identifies exactly what was exercised (ids, versions, topology hash) for the report."""
        ...

    def ready(self) -> bool:
        """The service answers readiness through its public endpoint."""
        ...

    def replicas(self) -> dict[str, dict[str, Any]]:
        """Desired and ready API replicas per region; ``ready_ids`` too when the target can tell which."""
        ...

    def primary_region(self) -> str | None: ...

    def kill_replicas(self, count: int | None = None, percent: float | None = None,
                      region: str | None = None) -> dict[str, Any]: ...  # fmt: skip

    def lose_region(self, region: str) -> dict[str, Any]: ...

    def restore_region(self, region: str) -> dict[str, Any]: ...

    def fail_over_database(self, mode: str = "kill-node") -> dict[str, Any]: ...

    def roll_out(self, version: str, max_unavailable: int | None = None) -> dict[str, Any]:
        """Roll every API replica to ``version`` by the target's own strategy (the Deployment's
        maxSurge/maxUnavailable); ``max_unavailable`` overrides it where the target can."""
        ...

    def heal(self) -> dict[str, Any]:
        """Undo every lasting fault and wait until the target is whole; idempotent.
        Returns ``restored`` (what was undone), ``whole`` and ``landed`` (= whole)."""
        ...

    def whole(self) -> bool:
        """Every region up, every replica ready, a primary database: nothing left to heal."""
        ...

    def settled(self) -> bool:
        """Whole and at rest: no autoscaler still holding replicas above the minimum for load that
        has ended (a drill's baseline, and a scale-out it measures, start from the minimum)."""
        ...


class TargetKind(Protocol):
    """A kind of target (the sandbox, a Kubernetes cluster, an AWS account): a plugin registered in
    the ``drillbit.targets`` entry-point group, so another package adds a kind without editing
    drillbit. ``spec_model`` is the pydantic model of its fields in drill.yaml (``kind`` aside)."""

    name: str
    spec_model: type[BaseModel]

    def check_identity(self, name: str, spec: Any, source: str) -> None:
        """Refuse, before anything touches the target, one that is not exactly what drill.yaml
        names (a Kubernetes context, an AWS account ID): ConfigError naming ``source``."""
        ...

    def attach(self, name: str, spec: Any, state_dir: Path | str | None) -> Target:
        """The running target, to measure and inject faults into."""
        ...

    def is_up(self, name: str, spec: Any, state_dir: Path | str | None) -> bool: ...

    def up(self, name: str, spec: Any, state_dir: Path | str | None, report: Callable[[str], None]) -> Target:
        """Bring it up (cleaning up a stale one first); a target drillbit does not create checks it is there."""
        ...

    def down(self, name: str, spec: Any, state_dir: Path | str | None, report: Callable[[str], None]) -> None:
        """Bring it down: nothing drillbit started is left (a target drillbit did not create is left as it is)."""
        ...

    def status(self, name: str, spec: Any, state_dir: Path | str | None) -> dict[str, Any]:
        """JSON-friendly state, for ``drill env status``."""
        ...
