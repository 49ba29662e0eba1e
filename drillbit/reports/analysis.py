"""What the report computes itself from the samples: timeline series, and per-phase latency when
measurements.json has none (an interrupted drill). Each step that cannot run says why instead of raising.

Phases and fault spans are never worked out here: they are measurements.json's (``drillbit.analysis``
worked them out). Only a run directory without a readable measurements.json (a drill cut short
before its analysis) has them derived from its events, by the same functions the analysis uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from drillbit.core.events import faults_from_events
from drillbit.core.results import LatencyStats
from drillbit.core.rundir import AVAILABILITY, REPLICAS, REPLICATION_LAG, REPLICATION_LAG_SCHEMA, REQUESTS_DIR
from drillbit.probes.availability import load_availability
from drillbit.probes.latency import analyze_latency, load_requests, phases_of
from drillbit.probes.replicas import load_replicas
from drillbit.probes.samplers import read_samples
from drillbit.reports.rundata import RunData
from drillbit.reports.timeline import RequestSeries, ratio_series, request_series

__all__ = ["Analysis", "analyze", "fault_spans", "marks", "phases"]

log = logging.getLogger(__name__)

_READ_ERRORS = (FileNotFoundError, ValueError, OSError, pa.ArrowInvalid, KeyError)
MARK_KINDS = ("mark", "load.step", "load.drop")


@dataclass
class Analysis:
    requests: RequestSeries | None = None
    latency: dict[str, LatencyStats] | None = None  # phase -> stats, only when measurements.json has none
    availability: pd.DataFrame | None = None  # t, ratio, n per bucket
    replicas: pd.DataFrame | None = None
    replication_lag: pd.DataFrame | None = None  # t, member, lag_s (read ok)
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why


def phases(data: RunData) -> dict[str, tuple[float, float]]:
    """Phase windows: measurements.json's (without one: from the ``phase`` events, each until the next)."""
    if data.measurements is not None:
        return dict(data.measurements.phases)
    return phases_of(data.events)


def fault_spans(data: RunData) -> list[tuple[float, float | None, str]]:
    """(injected, reverted, label) per fault: measurements.json's faults (without one: from the events)."""
    if data.measurements is not None:
        faults = data.measurements.faults
    else:
        try:
            faults = faults_from_events(data.events)
        except (KeyError, TypeError, ValueError) as err:  # events of the wrong shape: no spans, said
            log.warning("fault spans not derived from the events: %s", err)
            return []
    return [(f.injected_at, f.reverted_at, f.activity) for f in faults]


def marks(data: RunData) -> list[tuple[float, str]]:
    """Marks, load steps, and each alert's first firing and resolved notification (drillbit.probes.alerts)."""
    out = []
    seen: set[tuple[str, str]] = set()
    for e in data.events:
        if e.get("kind") in MARK_KINDS:
            text = e.get("name") or e.get("label") or e.get("message") or e["kind"]
            out.append((float(e["t"]), str(text) if e["kind"] == "mark" else f"{e['kind']}"))
        elif e.get("kind") == "alert" and (key := (str(e.get("name")), str(e.get("status")))) not in seen:
            seen.add(key)
            out.append((float(e["t"]), f"alert {key[0]} {key[1]}"))
    return sorted(out)


def analyze(data: RunData, *, max_buckets: int = 3600) -> Analysis:
    out = Analysis()
    d = data.run_dir
    if data.has_requests:
        try:
            requests = load_requests(d)
            out.requests = request_series(requests, max_buckets=max_buckets)
            has_latency = data.measurements is not None and bool(data.measurements.latency)
            if not has_latency and len(requests):
                out.latency = analyze_latency(requests, phases(data))
            del requests
        except _READ_ERRORS as err:
            out.notes.append(f"{REQUESTS_DIR}/: {data.text(err)}")
    width = out.requests.width if out.requests is not None else 1.0
    if data.has_samples(AVAILABILITY):
        try:
            av = load_availability(d)
            out.availability = ratio_series(av["t"].to_numpy(dtype=float), av["ok"].to_numpy(dtype=bool), width)
        except _READ_ERRORS as err:
            out.notes.append(f"{AVAILABILITY}: {data.text(err)}")
    if data.has_samples(REPLICAS):
        try:
            reps = load_replicas(d)
            reps["region"] = reps["region"].map(data.text)
            out.replicas = reps
        except _READ_ERRORS as err:
            out.notes.append(f"{REPLICAS}: {data.text(err)}")
    if data.has_samples(REPLICATION_LAG):
        try:
            lag = read_samples(d / REPLICATION_LAG, REPLICATION_LAG_SCHEMA).to_pandas()
            lag = lag[lag["ok"].astype(bool)][["t", "member", "lag_s"]]
            lag["member"] = lag["member"].astype(str).map(data.text)
            out.replication_lag = lag
        except _READ_ERRORS as err:
            out.notes.append(f"{REPLICATION_LAG}: {data.text(err)}")
    return out
