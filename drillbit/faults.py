"""Portable fault actions and target probes for Chaos Toolkit experiments.

One experiment file runs on every target: each function resolves the target named in the
experiment's configuration (``drillbit_target``, default ``sandbox``; ``drillbit_state_dir`` for
the sandbox's state) and calls the driver (``drillbit.targets.base.Target``). Plain module-level
functions with keyword arguments and JSON-friendly results, as Chaos Toolkit extensions are::

    method:
      - type: action
        name: kill-one-replica
        provider: {type: python, module: drillbit.faults, func: kill_replicas, arguments: {count: 1}}

Every fault returns ``landed``: whether the target verified the fault took effect. The drill's
control (``drillbit.control``) records it; a fault that did not land makes the drill
INCONCLUSIVE. ``spike_load`` injects load instead of breaking something: a second open-model
generator on top of the drill's own load, recorded in ``<run dir>/spike/``. ``switch_traffic`` is a
blue-green release's switch (and ``switch_traffic_back`` its rollback): only a target with a traffic
switch (a Kubernetes Service whose selector names the live colour) has one; another is refused.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from drillbit.core.clock import Clock
from drillbit.core.errors import ConfigError, DrillError
from drillbit.core.events import EventLog, read_events
from drillbit.core.rundir import EVENTS, PITR
from drillbit.core.safeio import write_text
from drillbit.load.runner import start_load
from drillbit.probes.latency import load_requests
from drillbit.probes.replication import wait_lag
from drillbit.probes.spike import LANDED_SHARE, spike_delivery
from drillbit.targets import Target, resolve_target

__all__ = [
    "FAULTS",
    "await_replication",
    "await_service",
    "degrade_link",
    "degrade_replication",
    "drop_orders",
    "fail_over_database",
    "heal_data",
    "heal_links",
    "heal_target",
    "isolate_witness",
    "kill_replicas",
    "lose_region",
    "mark_restore_point",
    "needs_backups",
    "partition_region",
    "primary_region",
    "replicas",
    "restore_region",
    "restore_to_point",
    "roll_out",
    "service_ready",
    "spike_load",
    "switch_traffic",
    "switch_traffic_back",
    "take_backup",
    "target_whole",
]

log = logging.getLogger(__name__)

Configuration = dict[str, Any] | None

#: the functions that inject a fault (the control times them and checks ``landed``)
FAULTS = frozenset({"kill_replicas", "lose_region", "fail_over_database", "roll_out", "spike_load",
                    "switch_traffic", "partition_region", "degrade_link", "isolate_witness",
                    "degrade_replication", "drop_orders"})  # fmt: skip
#: the functions that undo one
REVERTS = frozenset({"restore_region", "heal_target", "switch_traffic_back", "heal_links", "heal_data"})
SPIKE_DIR = "spike"  # drillbit.probes.spike.SPIKE_DIR
#: the functions that need a target with backups (the sandbox brings itself up with them for such a drill)
BACKUP_ACTIONS = frozenset({"take_backup", "mark_restore_point", "drop_orders", "restore_to_point", "heal_data"})


def needs_backups(experiment: dict[str, Any]) -> bool:
    """Whether an experiment calls a point-in-time recovery action of this module."""
    activities = [*(experiment.get("method") or []), *(experiment.get("rollbacks") or [])]
    return any((a.get("provider") or {}).get("module") == __name__
               and (a.get("provider") or {}).get("func") in BACKUP_ACTIONS
               for a in activities if isinstance(a, dict))  # fmt: skip


@runtime_checkable
class TrafficSwitch(Protocol):
    """A target that can point its service's traffic at another colour of a blue-green release."""

    def switch_traffic(self, to: str | None = None) -> dict[str, Any]: ...

    def switch_traffic_back(self) -> dict[str, Any]: ...


@runtime_checkable
class NetworkFaults(Protocol):
    """A target whose inter-region links drillbit shapes (the sandbox with ``links: {enabled: true}``)."""

    def partition_region(self, region: str, wait_failover_s: float = 0.0) -> dict[str, Any]: ...

    def degrade_link(self, region: str, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                     bandwidth_kbps: float = 0.0) -> dict[str, Any]: ...  # fmt: skip

    def isolate_witness(self) -> dict[str, Any]: ...

    def heal_links(self) -> dict[str, Any]: ...

    def degrade_replication(self, region: str, bandwidth_kbps: float = 0.0,
                            latency_ms: float = 0.0) -> dict[str, Any]: ...  # fmt: skip

    def replication_lag(self) -> list[dict[str, Any]]: ...

    def primary_region(self) -> str | None: ...


@runtime_checkable
class PointInTimeRecovery(Protocol):
    """A target that backs its database up to a bucket and restores it to a point in time (the sandbox
    with ``backups: {enabled: true}``: drillbit.targets.sandbox.pointintime)."""

    def take_backup(self) -> dict[str, Any]: ...

    def mark_restore_point(self, name: str) -> dict[str, Any]: ...

    def drop_orders(self) -> dict[str, Any]: ...

    def restore_to_point(self, target_time: float, run_id: str | None = None,
                         margin_s: float = 5.0) -> dict[str, Any]: ...  # fmt: skip

    def heal_data(self) -> dict[str, Any]: ...


def _able(configuration: Configuration, protocol: Any, field: str, needs: str, hint: str = "") -> Any:
    """The configured target, if it offers ``protocol`` (a runtime-checkable Protocol: mypy takes no
    abstract class as a ``type[...]`` argument); else a one-line error saying what is needed."""
    target = _target(configuration)
    if not isinstance(target, protocol):
        raise ConfigError(field, f"{needs}: {target.name!r} is a {target.kind} target{hint}")
    return target


def _pitr(configuration: Configuration, action: str) -> PointInTimeRecovery:
    return _able(configuration, PointInTimeRecovery, f"drillbit.faults.{action}",
                 "needs a target whose backups drillbit restores (the sandbox with backups.enabled)")  # fmt: skip


def _network(configuration: Configuration, fault: str) -> NetworkFaults:
    return _able(configuration, NetworkFaults, f"drillbit.faults.{fault}", "needs a target whose inter-region links "
                 "drillbit owns (the sandbox with links.enabled)", "; use its own network faults")  # fmt: skip


def _target(configuration: Configuration) -> Target:
    cfg = configuration or {}
    return resolve_target(str(cfg.get("drillbit_target") or "sandbox"), state_dir=cfg.get("drillbit_state_dir"))


def _traffic_switch(configuration: Configuration) -> TrafficSwitch:
    return _able(configuration, TrafficSwitch, "configuration.drillbit_target", "blue-green needs a kubernetes "
                 "target (a Service whose selector names the live colour)")  # fmt: skip


def kill_replicas(
    count: int | None = None,
    percent: float | None = None,
    region: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """SIGKILL API replicas (a count or a percent, optionally in one region); the supervisor replaces them."""
    return _target(configuration).kill_replicas(count, percent=percent, region=region)


def lose_region(region: str, configuration: Configuration = None) -> dict[str, Any]:
    """Lose a whole region at once: its API replicas and its database node. Undo with ``restore_region``."""
    return _target(configuration).lose_region(region)


def restore_region(region: str, configuration: Configuration = None) -> dict[str, Any]:
    """Bring a lost region back and wait until it serves again."""
    return _target(configuration).restore_region(region)


def fail_over_database(mode: str = "kill-node", configuration: Configuration = None) -> dict[str, Any]:
    """Fail the database over: kill-node (host loss), kill-postgres (crash), switchover (planned)."""
    return _target(configuration).fail_over_database(mode)


def roll_out(
    version: str = "auto", max_unavailable: int | None = None, configuration: Configuration = None
) -> dict[str, Any]:
    """Roll every API replica to ``version`` by the target's strategy (the manifests' maxSurge and
    maxUnavailable), waiting for readiness; ``max_unavailable`` overrides it on the sandbox.

    ``auto``: a version no replica runs yet (``drill-<UTC time>``), so a repeated drill rolls again.
    """
    if version == "auto":
        version = "drill-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return _target(configuration).roll_out(version, max_unavailable=max_unavailable)


def switch_traffic(to: str | None = None, configuration: Configuration = None) -> dict[str, Any]:
    """Blue-green: point the service at colour ``to`` (default: the idle one) and read it back.

    Landed when the Service selects the new colour and ready pods match it; refused (landed false,
    nothing changed) when that colour has no ready pod. Undo with ``switch_traffic_back``.
    """
    return _traffic_switch(configuration).switch_traffic(to)


def switch_traffic_back(configuration: Configuration = None) -> dict[str, Any]:
    """Rollback of ``switch_traffic``: restore the selector the switch replaced (landed: nothing to undo)."""
    return _traffic_switch(configuration).switch_traffic_back()


def spike_load(
    rate: float,
    duration: float,
    locustfile: str = "trader",
    max_in_flight: int = 400,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Add ``rate`` requests/s (open model) for ``duration`` s on top of the drill's load; blocks until done.

    Emits ``load.step`` when the spike's schedule starts and ``load.drop`` when it ends (the
    autoscaling analyzer measures from them). Landed when the target answered at least 95 % of the
    requests its schedule drew, whatever the status (``drillbit.probes.spike``); its requests are
    judged like the main load's.
    """

    if rate <= 0 or duration <= 0:
        raise ConfigError("arguments", "spike_load: rate and duration must be > 0")
    cfg = configuration or {}
    target = _target(configuration)
    run_dir = Path(cfg["drillbit_run_dir"]) if cfg.get("drillbit_run_dir") else Path(tempfile.mkdtemp(prefix="spike-"))
    out = run_dir / SPIKE_DIR
    out.mkdir(parents=True, exist_ok=True)
    profile = out / "profile.yaml"
    write_text(profile, yaml.safe_dump({
        "name": "spike-load", "model": "open", "arrival": "poisson", "max_in_flight": max_in_flight, "timeout_s": 5,
        "stages": [{"duration": duration, "rate": rate}],
    }))  # fmt: skip
    clock = Clock.from_env()  # the run's: its load.step lines up with the samples
    run = start_load(locustfile, profile, target.endpoints().api_url, out, clock=clock)
    try:
        result = run.wait(duration + 60)
    finally:
        run.stop()
    # the spike's own schedule says when it began: its first intended send time
    began = _first_intended(out)
    with EventLog(run_dir / EVENTS, clock) as events:
        events.emit("load.step", t=began, rate=rate, source="spike_load")
        events.emit("load.drop", t=min(began + duration, clock.now()), source="spike_load")
    # landed: the target answered (any status) >= 95 % of the spike's scheduled requests; sent is not enough.
    # A saturated spike generator is recorded (its own figures are then suspect), but the extra load
    # landed or did not by what the target answered, not by how the generator fared
    delivery = spike_delivery(out, rate, duration)
    reason = None if delivery.landed else (
        f"the target answered {delivery.answered} of the spike's {delivery.scheduled} scheduled requests "
        f"(< {LANDED_SHARE:.0%}; {delivery.sent} sent; {rate:g} req/s x {duration:g} s expected "
        f"{rate * duration:.0f} draws)"
        + (f"; the spike's generator saturated: {result.reason}" if result.saturated else ""))  # fmt: skip
    return {
        "landed": delivery.landed,
        "reason": reason,
        "intended_rps": result.intended_rps,
        "achieved_rps": result.achieved_rps,
        "answered_rps": delivery.answered_rps,
        "answered": delivery.answered,
        "failed_answers": delivery.failed_answers,
        "saturated": result.saturated,
        "reasons": result.reasons,
        "records": str(out),
    }


def _first_intended(out: Path) -> float:
    import numpy as np

    requests = load_requests(out)
    return float(np.nanmin(requests.intended))


def partition_region(region: str, wait_failover_s: float = 0.0, configuration: Configuration = None) -> dict[str, Any]:
    """Cut ``region`` off from the other region and from the witness (clients still reach both
    sides). Landed when no request gets across a cut link. With ``wait_failover_s``, when the region
    held the primary: waits (bounded) for its demotion and another region's promotion, and reports
    ``demoted_after_s``, ``promoted_after_s`` and ``two_primaries_s``. Undo with ``heal_links``."""
    return _network(configuration, "partition_region").partition_region(region, wait_failover_s)


def degrade_link(
    region: str, latency_ms: float = 0.0, jitter_ms: float = 0.0, bandwidth_kbps: float = 0.0,
    configuration: Configuration = None,
) -> dict[str, Any]:  # fmt: skip
    """Add latency (± jitter) to each round trip across ``region``'s links and/or cap their bandwidth
    (kilobits/s); landed when a round trip (a transfer) across the link measures it. Undo with ``heal_links``."""
    return _network(configuration, "degrade_link").degrade_link(region, latency_ms, jitter_ms, bandwidth_kbps)


def degrade_replication(
    region: str | None = None, bandwidth_kbps: float = 16.0, latency_ms: float = 0.0, until_lag_s: float | None = None,
    hold_s: float = 0.0, timeout_s: float = 240.0, configuration: Configuration = None,
) -> dict[str, Any]:  # fmt: skip
    """Slow the replication stream out of ``region``'s database (default: the primary's region) to
    ``bandwidth_kbps`` (kilobits/s) and/or add ``latency_ms``; clients and the witness keep their paths.
    With ``until_lag_s``: returns once a replica is more than that many seconds behind (read from the
    databases every 0.5 s, at most ``timeout_s``) and ``hold_s`` more (an alert's window: held here
    rather than in a ``pauses.after``, which chaostoolkit sleeps out even when the drill is
    interrupted), and reports when (``lag_above_target_at``, the drill clock's epoch seconds: the
    moment an alert on the lag has its condition true); landed only if it got there. Undo with
    ``heal_links``."""
    target = _network(configuration, "degrade_replication")
    if until_lag_s is not None and (until_lag_s <= 0 or timeout_s <= 0 or hold_s < 0):
        raise ConfigError("drillbit.faults.degrade_replication", "until_lag_s and timeout_s must be > 0, hold_s >= 0")
    source = region or target.primary_region()
    if source is None:
        raise ConfigError("drillbit.faults.degrade_replication", "no primary database to lag behind: give region")
    result = target.degrade_replication(source, bandwidth_kbps, latency_ms)
    if until_lag_s is None or not result.get("landed"):
        return result
    waited = wait_lag(target.replication_lag, until_lag_s, timeout_s, clock=Clock.from_env())
    if waited["above"]:
        time.sleep(hold_s)
    reason = None if waited["above"] else (f"no replica fell more than {until_lag_s:g} s behind within {timeout_s:g} s "
                                           f"(peak {waited['peak_s']:g} s): the link is not slow enough for the "
                                           "write load")  # fmt: skip
    return {**result, "until_lag_s": until_lag_s, "lag_above_target_at": waited["at"], "lagging_member":
            waited["member"], "lag_s": waited["lag_s"], "peak_lag_s": waited["peak_s"],
            "unreadable_lag_reads": waited["unreadable"], "held_s": hold_s if waited["above"] else 0.0,
            "landed": waited["above"], "reason": reason}  # fmt: skip


def await_replication(max_lag_s: float = 1.0, timeout_s: float = 120.0, configuration: Configuration = None) -> float:
    """Probe: wait until every replica is within ``max_lag_s`` of the primary; returns the seconds waited.
    Raises when they are not within ``timeout_s``."""
    target = _network(configuration, "await_replication")
    started = time.monotonic()
    while (waited := time.monotonic() - started) < timeout_s:
        try:
            rows = target.replication_lag()
        except DrillError as err:
            log.info("replication lag unreadable: %s", err)
            rows = []
        if rows and all(r.get("ok") and float(r["lag_s"]) <= max_lag_s for r in rows):
            return round(waited, 3)
        time.sleep(0.5)
    raise TimeoutError(f"the replicas were not within {max_lag_s:g} s of the primary within {timeout_s:g} s")


def isolate_witness(configuration: Configuration = None) -> dict[str, Any]:
    """Cut every region off from the witness (the DCS); landed when etcd answers no region's link."""
    return _network(configuration, "isolate_witness").isolate_witness()


def heal_links(configuration: Configuration = None) -> dict[str, Any]:
    """Rollback of the network faults: every link clear, then wait until the target is whole."""
    return _network(configuration, "heal_links").heal_links()


def take_backup(configuration: Configuration = None) -> dict[str, Any]:
    """A base backup of the primary to the target's bucket, while it serves (WAL archiving runs all along)."""
    return _pitr(configuration, "take_backup").take_backup()


def mark_restore_point(name: str = "drillbit", configuration: Configuration = None) -> dict[str, Any]:
    """T, the point in time a later ``restore_to_point`` restores to (the database's clock; a named
    restore point is created too). Recorded in the run's events as ``pitr.target``."""
    result = _pitr(configuration, "mark_restore_point").mark_restore_point(name)
    run_dir = _run_dir(configuration)
    if run_dir is not None:
        with EventLog(run_dir / EVENTS, Clock.from_env()) as events:
            events.emit("pitr.target", t=result["target_time"], lsn=result.get("lsn"), name=name)
    return result


def drop_orders(configuration: Configuration = None) -> dict[str, Any]:
    """The disaster of the pitr-restore drill: the orders table is gone for the application. Landed
    when ``orders`` no longer resolves. Undo with ``heal_data`` (the rollback)."""
    return _pitr(configuration, "drop_orders").drop_orders()


def restore_to_point(margin_s: float = 5.0, configuration: Configuration = None) -> dict[str, Any]:
    """Restore the database, into a fresh node, to the last ``mark_restore_point``'s T, and compare the
    restored rows with the source's (those created before T - ``margin_s``: a transaction commits after
    its rows' creation, at most the API's request timeout later); the evidence goes to
    ``samples/pitr.json`` (judged by the pitr SLAs). A restore that fails is recorded, not raised: its
    SLAs then say why."""
    run_dir = _run_dir(configuration)
    marks = [e for e in read_events(run_dir / EVENTS) if e.get("kind") == "pitr.target"] if run_dir else []
    if not marks:
        raise ConfigError("drillbit.faults.restore_to_point", "no restore point in this drill: call "
                                                              "mark_restore_point before restore_to_point")  # fmt: skip
    run_id = (configuration or {}).get("drillbit_run_id")
    if margin_s < 0:
        raise ConfigError("drillbit.faults.restore_to_point", "margin_s must be >= 0")
    evidence = _pitr(configuration, "restore_to_point").restore_to_point(float(marks[-1]["t"]), run_id, margin_s)
    assert run_dir is not None
    write_text(run_dir / PITR, json.dumps(evidence, indent=2, default=str))
    if evidence.get("served_at"):
        with EventLog(run_dir / EVENTS, Clock.from_env()) as events:
            backup = (evidence.get("backup") or {}).get("backup_id")
            events.emit("pitr.restored", t=evidence["served_at"], backup=backup)
    tables = evidence.get("tables") or {}
    return {"restored": evidence["restored"], "error": evidence.get("error"),
            "restore_s": (evidence["served_at"] - evidence["started_at"]) if evidence.get("served_at") else None,
            "missing_rows": sum(t["missing_count"] for t in tables.values()),
            "extra_rows": sum(t["extra_count"] for t in tables.values()),
            "rows_after_target": sum(t["after_target_count"] for t in tables.values()),
            "evidence": PITR}  # fmt: skip


def heal_data(configuration: Configuration = None) -> dict[str, Any]:
    """Rollback of ``drop_orders`` and ``restore_to_point``: the restored node stopped, the orders table put back."""
    return _pitr(configuration, "heal_data").heal_data()


def _run_dir(configuration: Configuration) -> Path | None:
    raw = (configuration or {}).get("drillbit_run_dir")
    return Path(raw) if raw else None


def heal_target(configuration: Configuration = None) -> dict[str, Any]:
    """Rollback: undo every lasting fault (lost regions, database nodes left down) and wait until whole."""
    return _target(configuration).heal()


def await_service(timeout_s: float = 300.0, stable_s: float = 5.0, configuration: Configuration = None) -> float:
    """Probe: wait until the service is continuously ready for ``stable_s``; returns the seconds waited.

    Raises when it is not within ``timeout_s`` (the fault then stays in place until the rollbacks).
    """
    waited = wait_until_ready(_target(configuration), timeout_s, stable_s)
    if waited is None:
        raise TimeoutError(f"the service was not continuously ready for {stable_s} s within {timeout_s} s")
    return waited


def wait_until_ready(target: Target, timeout_s: float, stable_s: float, poll_s: float = 0.25) -> float | None:
    """Seconds until ``target`` had been continuously ready for ``stable_s``; None if not within ``timeout_s``."""
    return wait_steadily(target.ready, timeout_s, stable_s, poll_s)


def wait_steadily(check: Callable[[], bool], timeout_s: float, stable_s: float, poll_s: float = 0.25) -> float | None:
    """Seconds until ``check()`` had held at every poll for ``stable_s``; None if not within ``timeout_s``."""
    started = time.monotonic()
    good_since: float | None = None
    while (now := time.monotonic()) - started < timeout_s:
        if check():
            good_since = good_since or now
            if now - good_since >= stable_s:
                return round(now - started, 3)
        else:
            good_since = None
        time.sleep(poll_s)
    return None


def replicas(configuration: Configuration = None) -> dict[str, dict[str, int]]:
    """Desired and ready API replicas per region."""
    return _target(configuration).replicas()


def primary_region(configuration: Configuration = None) -> str | None:
    """The region whose database node is the primary (None during an outage)."""
    return _target(configuration).primary_region()


def service_ready(configuration: Configuration = None) -> bool:
    """True when the service's public endpoint answers readiness (the database is writable through it)."""
    return _target(configuration).ready()


def target_whole(configuration: Configuration = None) -> bool:
    """True when every region is up, every replica ready and a primary database leads."""
    return _target(configuration).whole()
