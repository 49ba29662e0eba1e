"""Replication lag: the sampler (every replica's lag behind the primary, every second, over the
whole drill) and its analyzer.

The lag is what promoting a replica now would lose (RPO exposure, seed R9.4): seconds of commits
it has not replayed, and bytes of WAL. The target says how it reads it (``ReplicationLagSource``:
the sandbox asks PostgreSQL directly, ``drillbit.targets.sandbox.replication``). A read that fails
is a gap in the samples (counted), never a lag of 0.

The analyzer gives the peak lag per phase (what the ``replication_lag_s`` SLA judges), the first
moment a replica was more than the RPO target behind after the fault (``breached_at``: what an
alert on the lag should have fired from) and when every replica had caught up again. Sampled
every ``interval_s``: a lag growing at most one second per second, the true peak is at most one
interval (plus a read's duration) above the one sampled.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from drillbit.core.clock import Clock
from drillbit.core.measurements import LagPhase, ReplicationLagMeasurement
from drillbit.core.rundir import REPLICATION_LAG, REPLICATION_LAG_SCHEMA
from drillbit.probes.samplers import ParquetSink, Sampler, TickSampler, read_meta, read_samples

__all__ = [
    "CAUGHT_UP_S",
    "ReplicationLagSampler",
    "ReplicationLagSource",
    "analyze_replication_lag",
    "wait_lag",
]

log = logging.getLogger(__name__)

#: a replica this close behind (seconds) has caught up
CAUGHT_UP_S = 1.0


@runtime_checkable
class ReplicationLagSource(Protocol):
    """A target that reads its replicas' lag: one row per replica with ``member``, ``lag_s``,
    ``lag_bytes``, ``ok`` and ``error``; raises when there is no primary to lag behind."""

    def replication_lag(self) -> list[dict[str, Any]]: ...


class ReplicationLagSampler(Sampler):
    """``samples/replication_lag.parquet``: a row per replica per tick (a failed read: ``ok`` false)."""

    def __init__(self, source: ReplicationLagSource, run_dir: Path | str, *, clock: Clock,
                 interval: float = 1.0) -> None:  # fmt: skip
        self.source, self.clock, self.interval = source, clock, interval
        self.path = Path(run_dir) / REPLICATION_LAG
        self.sink = ParquetSink(self.path, REPLICATION_LAG_SCHEMA)
        super().__init__()
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="replication-lag")  # fmt: skip

    def _probe(self, tick: float) -> None:
        started = self.clock.now()
        try:
            rows = self.source.replication_lag()
        except Exception as err:  # noqa: BLE001  (no primary, a driver error: a gap in the samples, recorded)
            self.sink.add({"t": started, "member": None, "lag_s": math.nan, "lag_bytes": None, "ok": False,
                           "error": f"{type(err).__name__}: {err}"[:200], "read_s": self.clock.now() - started})
            return
        took = self.clock.now() - started
        for r in rows:
            lag = r.get("lag_s")
            self.sink.add({"t": started, "member": str(r["member"]), "lag_s": math.nan if lag is None else float(lag),
                           "lag_bytes": r.get("lag_bytes"), "ok": bool(r.get("ok")), "error": r.get("error"),
                           "read_s": took})  # fmt: skip

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "replication_lag", "target": type(self.source).__name__, "interval_s": self.interval,
                **self._ticks.stats()}  # fmt: skip


def wait_lag(read: Callable[[], list[dict[str, Any]]], above_s: float, timeout_s: float, *, clock: Clock,
             poll_s: float = 0.5) -> dict[str, Any]:  # fmt: skip
    """Read the lag every ``poll_s`` until a replica is more than ``above_s`` behind, at most ``timeout_s``:
    ``above`` (whether it got there), ``at`` (the drill clock's time of that read), ``member``, ``lag_s``,
    ``peak_s`` (the most seen) and ``unreadable`` (reads that failed)."""
    deadline = time.monotonic() + timeout_s
    peak, unreadable = 0.0, 0
    while True:
        at = clock.now()
        try:
            rows = read()
        except Exception as err:  # noqa: BLE001  (no primary for a moment: counted, the wait goes on)
            log.info("replication lag unreadable: %s", err)
            rows = []
            unreadable += 1
        unreadable += sum(1 for r in rows if not r.get("ok"))
        lags = sorted(((float(r["lag_s"]), str(r["member"])) for r in rows if r.get("ok")), reverse=True)
        if lags:
            peak = max(peak, lags[0][0])
            if lags[0][0] > above_s:
                return {"above": True, "at": at, "member": lags[0][1], "lag_s": round(lags[0][0], 3),
                        "peak_s": round(peak, 3), "unreadable": unreadable}  # fmt: skip
        if time.monotonic() + poll_s > deadline:
            return {"above": False, "at": None, "member": None, "lag_s": None, "peak_s": round(peak, 3),
                    "unreadable": unreadable}  # fmt: skip
        time.sleep(poll_s)


def _phase_of(t: float, phases: dict[str, tuple[float, float]]) -> str | None:
    return next((name for name, (lo, hi) in phases.items() if lo <= t < hi), None)


def _readings(tick: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replicas read in one tick (a failed read, or the whole tick failing, reads nothing)."""
    return [r for r in tick if r["ok"] and r["lag_s"] is not None and math.isfinite(r["lag_s"])]


def _phase(ticks: list[list[dict[str, Any]]]) -> LagPhase:
    """One phase's ticks: how many, how many with a replica unread, and the worst replica's peak."""
    good = [r for tick in ticks for r in _readings(tick)]
    top = max(good, key=lambda r: r["lag_s"], default=None)
    sizes = [int(r["lag_bytes"]) for r in good if r["lag_bytes"] is not None]
    return LagPhase(samples=len(ticks), failed=sum(1 for tick in ticks if len(_readings(tick)) != len(tick)
                                                   or not tick),
                    peak_s=None if top is None else float(top["lag_s"]), peak_bytes=max(sizes, default=None),
                    peak_member=None if top is None else str(top["member"]))  # fmt: skip


def _caught_up(worst: list[tuple[float, float | None]], since: float) -> float | None:
    """The first tick from ``since`` on after which every replica stayed within CAUGHT_UP_S."""
    at = None
    for t, lag in worst:
        if t < since:
            continue
        if lag is None or lag > CAUGHT_UP_S:
            at = None
        elif at is None:
            at = t
    return at


def analyze_replication_lag(
    run_dir: Path | str, *, phases: dict[str, tuple[float, float]], fault_at: float | None, target_s: float | None,
    healed_at: float | None = None,
) -> ReplicationLagMeasurement:  # fmt: skip
    """The lag samples of a run: per phase the peak (seconds, bytes), the reads that failed; the first
    sample above ``target_s`` after the fault (``breached_at``) and the first after ``healed_at`` (else
    after the peak) from which every replica stayed within ``CAUGHT_UP_S``. Raises FileNotFoundError
    when the drill sampled no lag."""
    path = Path(run_dir) / REPLICATION_LAG
    rows = sorted(read_samples(path, REPLICATION_LAG_SCHEMA).to_pylist(), key=lambda r: r["t"])
    if not rows:
        raise ValueError("the replication-lag sampler recorded no sample")
    ticks: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        ticks.setdefault(float(r["t"]), []).append(r)
    by_phase: dict[str, list[list[dict[str, Any]]]] = {}
    for t, tick in ticks.items():
        if (name := _phase_of(t, phases)) is not None:
            by_phase.setdefault(name, []).append(tick)
    per_phase = {name: _phase(group) for name, group in by_phase.items()}
    worst = [(t, max((float(r["lag_s"]) for r in _readings(tick)), default=None)) for t, tick in ticks.items()]
    known = [(t, lag) for t, lag in worst if lag is not None]
    breached_at = None
    if fault_at is not None and target_s is not None:
        breached_at = next((t for t, lag in known if t >= fault_at and lag > target_s), None)
    since = healed_at if healed_at is not None else (max(known, key=lambda x: x[1])[0] if known else None)
    caught_up_at = _caught_up(worst, since) if since is not None else None
    interval = float(read_meta(path).get("interval_s") or 1.0)
    reads = [float(r["read_s"]) for r in rows if r.get("read_s") is not None and math.isfinite(r["read_s"])]
    return ReplicationLagMeasurement(
        interval_s=interval, samples=len(ticks), failed=sum(p.failed for p in per_phase.values()),
        members=sorted({str(r["member"]) for r in rows if r["member"] is not None}),
        phases=per_phase, target_s=target_s, fault_at=fault_at, breached_at=breached_at,
        breached_after_fault_s=None if breached_at is None or fault_at is None else breached_at - fault_at,
        healed_at=healed_at, caught_up_at=caught_up_at,
        caught_up_s=None if caught_up_at is None or since is None else caught_up_at - since,
        error_bound_s=interval + (max(reads) if reads else 0.0),
    )  # fmt: skip
