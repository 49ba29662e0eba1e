"""Analyze a run directory into ``measurements.json``: the analyzers over what the drill recorded.

Reads only the run directory (events.jsonl, samples/, requests/, load.json, journal.json), so a
report can be rebuilt, and an interrupted or crashed run analyzed, from the directory alone.
Leftover sample journals (a run that never closed its files) are converted first. A section an
analyzer cannot measure is ``None`` with the reason in ``unmeasured``: never a made-up number.
Each section is validated into its model (``drillbit.core.measurements``) here, in one place. The
drill's phases and faults (with their spans) are worked out here, once, and stored with them: a
report reads them from measurements.json.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from drillbit.core.clock import to_iso
from drillbit.core.errors import validation_problems
from drillbit.core.events import faults_from_events, first_event, first_fault, read_events
from drillbit.core.results import (
    JOURNAL,
    AlertsMeasurement,
    AutoscalingMeasurement,
    AvailabilityMeasurement,
    DriftMeasurement,
    ExperimentMeasurement,
    Fault,
    FaultRto,
    IntegrityMeasurement,
    LatencyMeasurement,
    LoadMeasurement,
    MarketDataMeasurement,
    Measurements,
    PitrMeasurement,
    PromqlMeasurement,
    ReplicasMeasurement,
    ReplicationLagMeasurement,
    RpoMeasurement,
    RtoMeasurement,
    SamplerCoverage,
    SpikeMeasurement,
)
from drillbit.core.rundir import (
    AVAILABILITY,
    AVAILABILITY_SCHEMA,
    EVENTS,
    HARNESS,
    HARNESS_REMOTE,
    HEARTBEAT,
    HEARTBEAT_SCHEMA,
    LOAD_META,
    MARKETDATA,
    MARKETDATA_SCHEMA,
    PITR,
    REPLICAS,
    REPLICAS_SCHEMA,
    REPLICATION_LAG,
    REPLICATION_LAG_SCHEMA,
    REQUESTS_DIR,
)
from drillbit.probes.alerts import ALERTS_META, analyze_alerts
from drillbit.probes.autoscaling import autoscaling_report
from drillbit.probes.availability import (
    DEFAULT_TIMEOUT,
    analyze_rto,
    availability_meta,
    failing_since,
    load_availability,
    rto_per_fault,
)
from drillbit.probes.coverage import coverage
from drillbit.probes.drift import analyze_drift
from drillbit.probes.integrity import analyze_integrity
from drillbit.probes.latency import analyze_latency, analyze_run, load_requests, phases_of
from drillbit.probes.marketdata import analyze_marketdata
from drillbit.probes.pitr import analyze_pitr
from drillbit.probes.promql import PROMQL_SAMPLES
from drillbit.probes.replicas import load_replicas
from drillbit.probes.replication import analyze_replication_lag
from drillbit.probes.rpo import heartbeat_meta, load_heartbeats, rpo_report
from drillbit.probes.samplers import read_meta, recover_journals
from drillbit.probes.spike import SPIKE_DIR, analyze_spike
from drillbit.sla import Sla

__all__ = ["analyze"]

log = logging.getLogger(__name__)

JOURNAL_SCHEMAS = {AVAILABILITY: AVAILABILITY_SCHEMA, HEARTBEAT: HEARTBEAT_SCHEMA, REPLICAS: REPLICAS_SCHEMA,
                   REPLICATION_LAG: REPLICATION_LAG_SCHEMA, MARKETDATA: MARKETDATA_SCHEMA}
#: RTO: the service must succeed continuously this long to count as recovered
STABILITY_WINDOW_S = 5.0


def _json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


#: each section's model (drillbit.core.measurements): every analyzer's result is validated into it here
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "rto": RtoMeasurement, "rpo": RpoMeasurement, "latency": LatencyMeasurement,
    "availability": AvailabilityMeasurement, "replicas": ReplicasMeasurement, "autoscaling": AutoscalingMeasurement,
    "spike": SpikeMeasurement, "experiment": ExperimentMeasurement, "alerts": AlertsMeasurement,
    "promql": PromqlMeasurement,
    "integrity": IntegrityMeasurement,
    "pitr": PitrMeasurement,
    "replication_lag": ReplicationLagMeasurement,
    "marketdata": MarketDataMeasurement,
    "drift": DriftMeasurement,
}  # fmt: skip


class _Sections:
    """Collects each analyzer's result, as its section's model, or why it has none."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.unmeasured: dict[str, str] = {}

    def run(self, section: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            raw = fn(*args, **kwargs)
        except ValidationError:
            raise  # an analyzer's result that does not fit its model is a bug, never "not measured"
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as err:
            self.unmeasured[section] = f"{type(err).__name__}: {err}"
            log.info("%s not measured: %s", section, err)
            return None
        value = SECTION_MODELS[section].model_validate(raw)
        self.values[section] = value
        return value


def _availability(run_dir: Path, phases: dict[str, tuple[float, float]], span: _Span | None) -> dict[str, Any]:

    df = load_availability(run_dir)
    if df.empty:
        raise ValueError("no availability samples")
    t, ok = df["t"].to_numpy(dtype=float), df["ok"].to_numpy(dtype=bool)
    per_phase = {}
    for name, (lo, hi) in phases.items():
        m = (t >= lo) & (t < hi)
        n = int(m.sum())
        per_phase[name] = {"probes": n, "failed": int((m & ~ok).sum()),
                           "percent": 100.0 * float(ok[m].mean()) if n else None}  # fmt: skip
    meta = availability_meta(run_dir)
    out = {"percent": 100.0 * float(ok.mean()), "probes": len(ok), "failed": int((~ok).sum()),
           "interval_s": meta.get("interval_s"), "phases": per_phase}  # fmt: skip
    if span is not None:
        out["coverage_problem"] = coverage("availability", t, meta).problem(span.start, span.end)
    return out


@dataclass(frozen=True)
class _Span:
    """The window the samplers must cover for the fault's verdicts: fault -> recovery + stability
    window, and to the end of the drill."""

    start: float
    end: float


def _required_span(fault_at: float, recovered_at: float | None, drill_end: float | None, window: float) -> _Span:
    ends = [drill_end] if drill_end is not None else []
    if recovered_at is not None:
        ends.append(recovered_at + window)
    return _Span(fault_at, max(ends) if ends else fault_at + window)


def _rto(run_dir: Path, events: list[dict[str, Any]], fault_at: float, source: str | None, window: float,
         faults: list[Fault]) -> dict[str, Any]:  # fmt: skip
    """RTO from the (earliest) fault time, each injected fault's own, and the probe's coverage."""

    df, meta = load_availability(run_dir), availability_meta(run_dir)
    settings: dict[str, Any] = {"stability_window": window, "timeout": float(meta.get("timeout_s", DEFAULT_TIMEOUT)),
                                "interval": meta.get("interval_s")}  # fmt: skip
    used, why = fault_at, f"{source} at {to_iso(fault_at)}"
    extra: dict[str, Any] = {}
    if source == "marked":
        # a mark placed after the probes had failed understates the RTO: the earlier of the two
        first_failed = failing_since(df, fault_at, window)
        extra = {"marked_at": fault_at, "failed_before_mark_at": first_failed}
        if first_failed is not None:
            used = first_failed
            why = (f"the first failed probe at {to_iso(first_failed)}, {fault_at - first_failed:.3f} s before the "
                   f"mark at {to_iso(fault_at)} (the earlier of the two)")  # fmt: skip
        else:
            why = f"marked at {to_iso(fault_at)} (no probe had failed before the mark)"
    r = analyze_rto(df, used, **settings).to_dict()
    r.update(extra, fault_time=why)
    if source == "detected":  # the fault time *is* the first failed probe: there is no separate time to detect
        r.update(detect_s=None, fault_time="detected from the first failed probe (no fault was marked): "
                                           "time to detect is undefined")  # fmt: skip
    if source == "injected" and faults:
        per = rto_per_fault(df, [f.injected_at for f in faults], **settings)
        r["per_fault"] = [FaultRto(fault_id=f.id, activity=f.activity, injected_at=f.injected_at, recovered=x.recovered,
                                   rto_s=x.rto_s, rto_upper_s=x.rto_upper_s, error_bound_s=x.error_bound_s,
                                   downtime_s=x.downtime_s, until=x.until)
                          for f, x in zip(sorted(faults, key=lambda f: f.injected_at), per, strict=True)]  # fmt: skip
    span = _required_span(used, r["recovered_at"], _drill_end(events), window)
    cov = coverage("availability", df["t"].to_numpy(dtype=float), meta)
    r["coverage"] = cov.to_dict()
    r["coverage_problem"] = cov.problem(span.start, span.end)
    return r


def _rpo(run_dir: Path, fault_at: float, span: _Span) -> dict[str, Any]:

    r = rpo_report(str(run_dir), fault_at)
    heartbeats, _ = load_heartbeats(run_dir)
    meta = heartbeat_meta(run_dir)
    cov = coverage("heartbeat", heartbeats["sent"].to_numpy(dtype=float), meta,
                   extra_gap_s=float(meta.get("max_write_s") or 0.0))  # fmt: skip
    r["coverage"] = cov.to_dict()
    r["coverage_problem"] = cov.problem(span.start, span.end)
    return r


def _spike(run_dir: Path, events: list[dict[str, Any]], phases: dict[str, tuple[float, float]]) -> SpikeMeasurement:

    step, drop = first_event(events, "load.step"), first_event(events, "load.drop")
    rate = float(step["rate"]) if step is not None and step.get("rate") is not None else None
    duration = float(drop["t"]) - float(step["t"]) if step is not None and drop is not None else None
    return analyze_spike(run_dir, phases, rate, duration if duration and duration > 0 else None)


def _drill_end(events: list[dict[str, Any]]) -> float | None:
    end = first_event(events, "drill.end")
    return float(end["t"]) if end is not None else None


def _replicas_restored(run_dir: Path, fault_at: float) -> dict[str, Any]:
    """Fault -> first replica sample at which every region has ready >= desired > 0 again (a region
    that ran no replica before the fault, by design, is whole at 0 of 0; a region lost is not)."""

    df = load_replicas(run_dir)
    after = df[df["t"] >= fault_at]
    if after.empty:
        raise ValueError("no replica samples after the fault")
    before = df[df["t"] < fault_at].groupby("region")["desired"].max()
    empty_by_design = after["region"].map(lambda r: r in before.index and before[r] == 0)
    ok = (after["ready"] >= after["desired"]) & ((after["desired"] > 0) | empty_by_design)
    whole = after.assign(ok=ok).groupby("t")["ok"].all()
    dipped = bool((~whole).any())
    # restored: the first whole sample after the last broken one (a region killed later breaks it again)
    broken_t = whole.index[~whole.to_numpy()]
    later = whole[whole.index > broken_t.max()] if dipped else whole
    restored_at = float(later.index[0]) if len(later) else None
    interval = float(np.median(np.diff(np.unique(df["t"].to_numpy())))) if df["t"].nunique() > 1 else math.nan
    cov = coverage("replicas", df["t"].to_numpy(dtype=float), read_meta(run_dir / REPLICAS))
    return {"restored_s": None if restored_at is None else restored_at - fault_at, "dipped": dipped,
            "restored_at": restored_at, "interval_s": interval,
            "observed_until_s": float(after["t"].max()) - fault_at, "coverage": cov.to_dict()}  # fmt: skip


def _journal_summary(run_dir: Path) -> dict[str, Any]:
    journal = _json(run_dir / JOURNAL)
    if journal is None:
        raise FileNotFoundError(f"no {JOURNAL}: the experiment did not finish")
    ss = journal.get("steady_states") or {}

    def met(which: str) -> bool | None:
        part = ss.get(which)
        return None if not part else bool(part.get("steady_state_met"))

    status = journal.get("status")
    return {"status": None if status is None else str(status), "deviated": bool(journal.get("deviated")),
            "steady_state_before": met("before"), "steady_state_after": met("after"),
            "activities": len(journal.get("run") or []), "rollbacks": len(journal.get("rollbacks") or [])}  # fmt: skip


def _latency(run_dir: Path, phases: dict[str, tuple[float, float]], names: set[str]) -> LatencyMeasurement:

    report = analyze_run(run_dir, phases)
    by_request = {}
    for name in sorted(names):  # a request the load never made leaves its own SLA unmeasured, not the others
        try:
            by_request[name] = analyze_latency(load_requests(run_dir, name), phases)
        except ValueError as err:
            log.info("no latency for %s: %s", name, err)
    return LatencyMeasurement(phases=report.phases, generator_saturated=report.generator_saturated,
                              saturation_reasons=report.saturation_reasons,
                              generator_complete=report.generator_complete, lost_parts=report.lost_parts,
                              lost_in_transit=report.lost_in_transit,
                              unaccounted_workers=report.unaccounted_workers, by_request=by_request)  # fmt: skip


def _autoscaling(run_dir: Path, events: list[dict[str, Any]], slas: dict[str, Sla]) -> dict[str, Any]:

    step = next((float(e["t"]) for e in events if e.get("kind") == "load.step"), None)
    if step is None:
        raise ValueError("no load.step event: the drill applied no load step")
    capacity = next((s.capacity for s in slas.values() if s.capacity), None)
    if capacity is None:
        # what the autoscaler itself decided: the peak desired replicas after the step
        df = load_replicas(run_dir)
        totals = df[df["t"] >= step].groupby("t")["desired"].sum()
        capacity = int(totals.max()) if len(totals) else 0
    return autoscaling_report(str(run_dir), target_replicas=capacity)


def analyze(run_dir: Path, slas: dict[str, Sla] | None = None, stability_s: float = STABILITY_WINDOW_S, *,
            convert_journals: bool = True) -> Measurements:  # fmt: skip
    """Every measurement the run directory supports (``slas`` says which request names matter).

    ``convert_journals``: turn sample journals an interrupted run left into Parquet files first
    (False: read them as they are, writing nothing into the run directory).
    """

    slas = slas or {}
    if convert_journals and (recovered := recover_journals(run_dir, JOURNAL_SCHEMAS)):
        log.warning("recovered %d sample journal(s) left by an interrupted run", len(recovered))
    events = read_events(run_dir / EVENTS) if (run_dir / EVENTS).exists() else []
    fault_at, source = first_fault(events)
    # the last phase is open-ended: it ends with the drill's last event
    end = max((float(e["t"]) for e in events), default=math.inf)
    phases = {k: (lo, min(hi, end)) for k, (lo, hi) in phases_of(events).items()}
    s = _Sections()
    faults = faults_from_events(events)
    if fault_at is None:
        s.unmeasured.update({k: "no fault was injected or marked" for k in ("rto", "rpo", "replicas")})
        span = None
    else:
        rto: RtoMeasurement | None = s.run("rto", _rto, run_dir, events, fault_at, source, stability_s, faults)
        span = _required_span(rto.fault_at if rto else fault_at, rto.recovered_at if rto else None, _drill_end(events),
                              stability_s)  # fmt: skip
        if (run_dir / HEARTBEAT).exists() or (run_dir / (HEARTBEAT + ".journal")).exists():
            s.run("rpo", _rpo, run_dir, fault_at, span)
        else:
            s.unmeasured["rpo"] = "no heartbeat writer ran (no write path to the target)"
        s.run("replicas", _replicas_restored, run_dir, fault_at)
    names = {sla.request for sla in slas.values() if sla.request}
    s.run("latency", _latency, run_dir, phases, names)
    s.run("availability", _availability, run_dir, phases, span)
    if any(e.get("kind") == "load.step" for e in events):
        s.run("autoscaling", _autoscaling, run_dir, events, slas)
    if (run_dir / SPIKE_DIR / REQUESTS_DIR).exists():
        s.run("spike", _spike, run_dir, events, phases)
    s.run("experiment", _journal_summary, run_dir)
    s.run("integrity", analyze_integrity, run_dir)
    if (run_dir / PITR).exists():
        s.run("pitr", analyze_pitr, run_dir, faults)
    else:
        s.unmeasured["pitr"] = "no point-in-time restore in this drill (drillbit.faults.restore_to_point)"
    _replication_lag(run_dir, phases, fault_at, faults, slas, s)
    if (run_dir / MARKETDATA).exists() or (run_dir / (MARKETDATA + ".journal")).exists():
        s.run("marketdata", analyze_marketdata, run_dir, phases=phases)
    else:
        s.unmeasured["marketdata"] = "no market-data probe ran (a drill runs it for an SLA on a marketdata_ metric)"
    if (run_dir / HARNESS).exists() or (run_dir / HARNESS_REMOTE).exists():
        s.run("drift", analyze_drift, run_dir)
    else:
        s.unmeasured["drift"] = "no harness samples (the drill applied no load)"
    _alerts(run_dir, events, fault_at, s, faults)
    _promql(run_dir, s)
    return Measurements(
        fault_at=fault_at,
        fault_source=source,
        faults=faults,
        phases=phases,
        rto=s.values.get("rto"),
        rpo=s.values.get("rpo"),
        latency=s.values.get("latency"),
        availability=s.values.get("availability"),
        replicas=s.values.get("replicas"),
        autoscaling=s.values.get("autoscaling"),
        spike=s.values.get("spike"),
        alerts=s.values.get("alerts"),
        promql=s.values.get("promql"),
        integrity=s.values.get("integrity"),
        pitr=s.values.get("pitr"),
        replication_lag=s.values.get("replication_lag"),
        marketdata=s.values.get("marketdata"),
        drift=s.values.get("drift"),
        load=_load(run_dir, s),
        experiment=s.values.get("experiment"),
        unmeasured=s.unmeasured,
        coverage=_coverages(s.values),
    )


def _replication_lag(run_dir: Path, phases: dict[str, tuple[float, float]], fault_at: float | None,
                     faults: list[Fault], slas: dict[str, Sla], s: _Sections) -> None:  # fmt: skip
    """Every replica's lag over the drill, when the target reads it; the breach judged against the
    tightest ``replication_lag_s < target`` SLA of the run."""
    if not (run_dir / REPLICATION_LAG).exists() and not (run_dir / (REPLICATION_LAG + ".journal")).exists():
        s.unmeasured["replication_lag"] = "the target reads no replication lag (no replica lag sampler ran)"
        return
    targets = [sla.target for sla in slas.values() if sla.metric == "replication_lag_s" and sla.op in ("<", "<=")]
    reverted = [f.reverted_at for f in faults if f.reverted_at is not None]
    s.run("replication_lag", analyze_replication_lag, run_dir, phases=phases, fault_at=fault_at,
          target_s=min(targets) if targets else None, healed_at=max(reverted) if reverted else None)  # fmt: skip


def _alerts(run_dir: Path, events: list[dict[str, Any]], fault_at: float | None, s: _Sections,
            faults: list[Fault]) -> None:  # fmt: skip
    """Alert latency, when an Alertmanager was wired to the drill and the experiment says what it expects."""
    meta = _json(run_dir / ALERTS_META)
    if meta is None:
        s.unmeasured["alerts"] = ("no Alertmanager was wired to the drill (on the sandbox: drill env up "
                                  "--with-monitoring, or drill run --with-monitoring)")  # fmt: skip
    elif not meta.get("declared"):
        s.unmeasured["alerts"] = "the experiment declares no expected alerts (expect_alerts in its drillbit extension)"
    elif fault_at is None:
        s.unmeasured["alerts"] = "no fault was injected or marked: no alert latency"
    else:
        rto = s.values.get("rto")
        s.run("alerts", analyze_alerts, events, meta, fault_at=fault_at,
              recovered_at=rto.recovered_at if rto is not None and rto.recovered else None,
              fault_details=[f.detail for f in faults])  # fmt: skip


def _promql(run_dir: Path, s: _Sections) -> None:
    """The experiment's PromQL figures as the runner recorded them, or why there are none."""
    data = _json(run_dir / PROMQL_SAMPLES)
    if data is None:
        s.unmeasured["promql"] = "the experiment names no PromQL query (promql: in its drillbit extension)"
    elif "unmeasured" in data:
        s.unmeasured["promql"] = str(data["unmeasured"])
    else:
        s.run("promql", lambda: data)


def _load(run_dir: Path, s: _Sections) -> LoadMeasurement | None:
    """load.json, the generator's own account (another process wrote it): one that does not fit is unmeasured."""
    raw = _json(run_dir / LOAD_META)
    try:
        return LoadMeasurement.model_validate(raw) if raw is not None else None
    except ValidationError as err:
        s.unmeasured["load"] = f"{LOAD_META}: " + "; ".join(validation_problems(err))
        return None


def _coverages(sections: dict[str, Any]) -> dict[str, SamplerCoverage]:
    """What each sampler covered (drillbit.probes.coverage), from the sections measured from its samples."""
    pairs = (("availability", "rto"), ("heartbeat", "rpo"), ("replicas", "replicas"))
    return {sampler: cov for sampler, name in pairs
            if (cov := getattr(sections.get(name), "coverage", None)) is not None}  # fmt: skip
