"""The sandbox as a drill target (``drillbit.targets.base.Target``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.errors import ConfigError
from drillbit.targets.base import Endpoints
from drillbit.targets.sandbox import loopback, procs, sandbox
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.network import Network
from drillbit.targets.sandbox.pointintime import PointInTime
from drillbit.targets.sandbox.replication import replication_lag
from drillbit.targets.sandbox.sandbox import Report, Sandbox, SandboxState

__all__ = ["SandboxKind", "SandboxSpec", "SandboxTarget"]

log = logging.getLogger(__name__)

FAILOVER_MODES = ("kill-node", "kill-postgres", "switchover")
#: a restored node must rejoin (pg_rewind, streaming) and a primary be elected within this
HEAL_TIMEOUT_S = 120.0


class SandboxTarget:
    kind = "sandbox"

    def __init__(self, sandbox: Sandbox, name: str = "sandbox") -> None:
        self.sb = sandbox
        self.name = name

    @classmethod
    def attach(cls, state_dir: Path | str | None = None, name: str = "sandbox") -> SandboxTarget:
        return cls(Sandbox.attach(state_dir), name)

    def state_dir(self) -> str:
        return str(self.sb.layout.state_dir)

    def dry_run(self) -> list[dict[str, Any]]:
        return []  # processes on loopback: no API server to ask; the plan's validation is the dry run

    def activity_scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # drillbit's own actions reach the sandbox through drillbit_state_dir

    def endpoints(self) -> Endpoints:
        # the heartbeat goes through the trading API: an acknowledged order is the write that must not be lost
        mon = self.sb.monitoring_urls() or {}
        return Endpoints(api_url=self.sb.front_door_url, dsn=self.sb.dsn, heartbeat_via="api",
                         prometheus_url=mon.get("prometheus"), alertmanager_url=mon.get("alertmanager"),
                         alert_receiver=mon.get("alert_receiver"))  # fmt: skip

    def fingerprint(self) -> dict[str, Any]:
        topo = Path(self.sb.state.topology_file)
        manifests = self.sb.topology.manifests
        return {
            "manifests": str((topo.parent / manifests).resolve()) if manifests else None,
            "sandbox_id": self.sb.state.id,
            "created_at": self.sb.state.created_at,
            "topology": str(topo),
            "topology_sha256": hashlib.sha256(topo.read_bytes()).hexdigest() if topo.exists() else None,
            "regions": self.sb.regions,
            "front_door": self.sb.front_door_url,
            "monitoring": self._monitoring_fingerprint(),
        }

    def _monitoring_fingerprint(self) -> dict[str, Any] | None:
        """The rules and routes the drill's alerts came from (the copies the sandbox runs), hashed."""
        if self.sb.monitoring_urls() is None:
            return None
        root = self.sb.layout.root
        files = [*sorted((root / "rules").glob("*.yml")), root / "alertmanager.yml", root / "prometheus.yml"]
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}

    def ready(self) -> bool:
        try:
            with loopback.client(timeout=2.0) as client:
                return client.get(f"{self.sb.front_door_url}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def replicas(self) -> dict[str, dict[str, Any]]:
        return self.sb.ready_replicas()

    def primary_region(self) -> str | None:
        return self.sb.primary()

    # -- faults ----------------------------------------------------------------------------
    def kill_replicas(self, count: int | None = None, percent: float | None = None,
                      region: str | None = None) -> dict[str, Any]:  # fmt: skip
        return self.sb.kill_replicas(count, percent=percent, region=region)

    def lose_region(self, region: str) -> dict[str, Any]:
        primary = self.sb.primary()  # before: a lost primary is the failover the drill measures
        result = self.sb.kill_region(region)
        alive = [r for r in self.sb.regions if r != region]
        # landed: no process of the region is left and none of its replicas answers (Patroni's own view
        # lags: a dead member stays in the DCS until its lease expires)
        left = procs.tagged(self.sb.state.id, prefix=f"{region}/")
        gone = not left and self.sb.replicas()[region]["ready"] == 0
        return {**result, "landed": gone, "surviving_regions": alive, "left_running": [p.pid for p in left],
                "primary_lost": primary == region}  # fmt: skip

    def restore_region(self, region: str) -> dict[str, Any]:
        result = self.sb.restore_region(region)  # waits until its node runs and its replicas are ready
        counts = self.sb.replicas()[region]
        back = (bool(procs.tagged(self.sb.state.id, f"{region}/db")) and counts["ready"] >= counts["desired"]
                and self.sb.supervisor.status(f"api-{region}") == "active")  # fmt: skip
        return {**result, "landed": back}

    def fail_over_database(self, mode: str = "kill-node") -> dict[str, Any]:
        if mode not in FAILOVER_MODES:
            raise ConfigError("arguments.mode", f"unknown failover mode {mode!r}: use {', '.join(FAILOVER_MODES)}")
        result = self.sb.failover_db(mode)  # type: ignore[arg-type]
        new, old = result.get("new_primary"), result.get("old_primary")
        return {**result, "landed": new is not None and new != old}

    def roll_out(self, version: str, max_unavailable: int | None = None) -> dict[str, Any]:
        result = self.sb.roll_out(version=version, max_unavailable=max_unavailable)
        if result.get("landed") and not result.get("replaced"):
            # every replica already ran it: nothing was rolled, so nothing was proven
            return {**result, "landed": False, "error": f"every replica already ran {version}: nothing was rolled"}
        return result

    # -- network faults (links.enabled: drillbit.targets.sandbox.network) --------------------
    def partition_region(self, region: str, wait_failover_s: float = 0.0) -> dict[str, Any]:
        return Network(self.sb).partition_region(region, wait_failover_s)

    def degrade_link(self, region: str, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                     bandwidth_kbps: float = 0.0) -> dict[str, Any]:  # fmt: skip
        return Network(self.sb).degrade_link(region, latency_ms, jitter_ms, bandwidth_kbps)

    def isolate_witness(self) -> dict[str, Any]:
        return Network(self.sb).isolate_witness()

    def degrade_replication(self, region: str, bandwidth_kbps: float = 0.0, latency_ms: float = 0.0) -> dict[str, Any]:
        return Network(self.sb).degrade_replication(region, bandwidth_kbps, latency_ms)

    def replication_lag(self) -> list[dict[str, Any]]:
        """Each replica's lag behind the primary (drillbit.targets.sandbox.replication)."""
        return replication_lag(self.sb)

    def heal_links(self) -> dict[str, Any]:
        """Rollback of the network faults: every link clear again, then the whole sandbox (a node
        demoted by a partition rejoins as a replica) within the heal timeout."""
        healed = Network(self.sb).heal()
        whole = self._wait_whole(HEAL_TIMEOUT_S)
        return {**healed, "whole": whole, "landed": healed["landed"] and whole}

    # -- point-in-time recovery (backups.enabled: drillbit.targets.sandbox.pointintime) ----------
    @property
    def backups_enabled(self) -> bool:
        return self.sb.topology.backups.enabled

    def take_backup(self) -> dict[str, Any]:
        return PointInTime(self.sb).take_backup()

    def mark_restore_point(self, name: str) -> dict[str, Any]:
        return PointInTime(self.sb).mark_restore_point(name)

    def drop_orders(self) -> dict[str, Any]:
        return PointInTime(self.sb).drop_orders()

    def restore_to_point(self, target_time: float, run_id: str | None = None, margin_s: float = 5.0) -> dict[str, Any]:
        return PointInTime(self.sb).restore_to_point(target_time, run_id, margin_s)

    def heal_data(self) -> dict[str, Any]:
        healed = PointInTime(self.sb).heal_data() if self.sb.topology.backups.enabled else {}
        return {**healed, "landed": True}

    # -- healing ---------------------------------------------------------------------------
    def _broken_regions(self) -> list[str]:
        """Regions with a stopped API watcher or no database node process (lost, or killed and left down)."""
        return [
            r for r in self.sb.regions
            if self.sb.supervisor.status(f"api-{r}") != "active" or not procs.tagged(self.sb.state.id, f"{r}/db")
        ]  # fmt: skip

    def whole(self) -> bool:
        return not Network(self.sb).shaped() and self._whole(self.sb.replicas())

    def _wait_whole(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not (whole := self.whole()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return whole

    def _whole(self, counts: dict[str, dict[str, int]]) -> bool:
        return (
            self.sb.primary() is not None
            and all(c["ready"] >= c["desired"] for c in counts.values())
            and sum(c["ready"] for c in counts.values()) > 0
            and all(self.sb.node_healthy(r) for r in self.sb.regions)
        )

    def settled(self) -> bool:
        if Network(self.sb).shaped():
            return False
        floor = {r.name: r.api_replicas for r in self.sb.topology.regions}
        counts = self.sb.replicas()  # probed once: every replica's /readyz
        above = [r for r, c in counts.items() if c["desired"] > floor.get(r, c["desired"])]
        return not above and self._whole(counts)

    def heal(self, timeout: float = HEAL_TIMEOUT_S) -> dict[str, Any]:
        """Restore every region whose database node or replicas are down, then wait (bounded) until
        the whole sandbox is healthy again (a primary elected, every node streaming); idempotent."""
        restored = []
        links = Network(self.sb).heal()  # first: a node can only rejoin across its links
        if links["healed"]:
            restored.append("links: " + ", ".join(links["healed"]))
        for region in self._broken_regions():
            log.warning("healing: restoring %s", region)
            self.sb.restore_region(region)
            restored.append(region)
        whole = self._wait_whole(timeout)
        if whole and self.sb.topology.backups.enabled:  # a dropped orders table put back, a restored node stopped
            data = PointInTime(self.sb).heal_data()
            if data["orders_table_put_back"] or data["restored_nodes_stopped"]:
                restored.append("data: " + ", ".join(k for k in ("orders_table_put_back", "restored_nodes_stopped")
                                                     if data[k]))  # fmt: skip
        return {"restored": restored, "whole": whole, "landed": whole}


class SandboxSpec(BaseModel):
    """A sandbox target's fields in drill.yaml."""

    model_config = ConfigDict(extra="forbid")
    state_dir: str | None = Field(default=None, min_length=1)  # default: .drill (or $DRILL_STATE_DIR)
    topology: str | None = Field(default=None, min_length=1)  # default: the project's infra/sandbox/topology.yaml
    monitoring: bool | None = None  # Prometheus and Alertmanager beside it; None: as the topology says
    backups: bool | None = None  # WAL archiving and base backups to an S3 bucket; None: as the topology says


class SandboxKind:
    """The sandbox kind (registered in the ``drillbit.targets`` entry-point group): drillbit
    creates it on loopback, so it has a whole lifecycle, and nothing to check its identity against."""

    name = "sandbox"
    spec_model = SandboxSpec

    def check_identity(self, name: str, spec: SandboxSpec, source: str) -> None:
        return None  # on this machine's loopback only, created by drillbit: nothing else it could be

    @staticmethod
    def _state(spec: SandboxSpec, state_dir: Path | str | None) -> Path | str | None:
        return state_dir or spec.state_dir

    def attach(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> SandboxTarget:
        return SandboxTarget.attach(self._state(spec, state_dir), name)

    def is_up(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> bool:
        state = SandboxState.load(Layout.at(self._state(spec, state_dir)))
        return state is not None and state.status == "up"

    def up(self, name: str, spec: SandboxSpec, state_dir: Path | str | None, report: Report) -> SandboxTarget:
        sb = sandbox.up(spec.topology, self._state(spec, state_dir), report=report, monitoring=spec.monitoring,
                        backups=spec.backups)  # fmt: skip
        return SandboxTarget(sb, name)

    def down(self, name: str, spec: SandboxSpec, state_dir: Path | str | None, report: Report) -> None:
        sandbox.down(self._state(spec, state_dir), report=report)

    def status(self, name: str, spec: SandboxSpec, state_dir: Path | str | None) -> dict[str, Any]:
        return {"up": True, **Sandbox.attach(self._state(spec, state_dir)).status()}  # not up: exit 4 and how to
