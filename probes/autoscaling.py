"""Autoscaling analyzer: load step -> first new ready replica -> target capacity; SLA meanwhile; scale-in.

Over replica samples (t, region, desired, ready; summed over regions per sample time) and,
optionally, request records (corrected latency, from probes.latency):

- time to first new replica: load step -> first sample with more ready replicas than at the step;
- time to capacity: load step -> first sample with ready >= target;
- SLA during scale-out: p95 of corrected latency over sliding windows from the step to capacity
  (or the end): the worst window, and whether it stayed under the SLA;
- scale-in: load drop -> desired back at its pre-step level, and how often desired changed
  direction after the step (flapping).
Bounds: one replica sampling interval on every time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drillbit.events import first_event, read_events
from drillbit.rundir import EVENTS
from probes.latency import Requests, load_requests
from probes.replicas import load_replicas

__all__ = ["AutoscalingResult", "analyze_autoscaling", "time_to_capacity"]


@dataclass(frozen=True)
class AutoscalingResult:
    load_step_at: float
    replicas_before: int
    target: int
    first_new_ready_s: float | None
    capacity_s: float | None  # None: capacity never reached within the samples
    peak_ready: int
    sla_p95_ms: float | None
    worst_p95_ms: float | None  # worst sliding-window p95 during scale-out (None without request data)
    sla_held: bool | None
    scale_in_s: float | None  # load drop -> desired back to replicas_before (None: not observed / no drop)
    direction_changes: int
    interval_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _totals(replicas: pd.DataFrame) -> pd.DataFrame:
    return replicas.groupby("t", sort=True)[["desired", "ready"]].sum().reset_index()


def _worst_p95(requests: Requests, lo: float, hi: float, window: float) -> float | None:
    key = np.where(np.isnan(requests.intended), requests.start, requests.intended)
    ok = (requests.status >= 200) & (requests.status < 400) & ~requests.error
    corrected = np.where(np.isnan(requests.intended), requests.latency,
                         requests.start + requests.latency - requests.intended)  # fmt: skip
    worst = None
    for w0 in np.arange(lo, max(hi - window, lo) + 1e-9, window / 2):
        m = ok & (key >= w0) & (key < w0 + window)
        if m.sum() >= 20:
            p95 = float(np.percentile(corrected[m], 95)) * 1000
            worst = p95 if worst is None else max(worst, p95)
    return worst


def analyze_autoscaling(
    replicas: pd.DataFrame,
    load_step_at: float,
    target: int,
    *,
    requests: Requests | None = None,
    sla_p95_ms: float | None = 100.0,
    window_s: float = 5.0,
    load_drop_at: float | None = None,
) -> AutoscalingResult:
    tot = _totals(replicas)
    if tot.empty:
        raise ValueError("no replica samples: cannot measure autoscaling")
    t = tot["t"].to_numpy(dtype=float)
    ready = tot["ready"].to_numpy(dtype=int)
    desired = tot["desired"].to_numpy(dtype=int)
    interval = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    before_idx = np.flatnonzero(t <= load_step_at)
    if before_idx.size == 0:
        raise ValueError("no replica sample before the load step: cannot tell what scaled")
    base_ready, base_desired = int(ready[before_idx[-1]]), int(desired[before_idx[-1]])
    after = t > load_step_at
    grew = np.flatnonzero(after & (ready > base_ready))
    full = np.flatnonzero(after & (ready >= target))
    first_new = float(t[grew[0]] - load_step_at) if grew.size else None
    capacity = float(t[full[0]] - load_step_at) if full.size else None
    worst = None
    if requests is not None and len(requests):
        end = load_step_at + capacity if capacity is not None else float(t[-1])
        worst = _worst_p95(requests, load_step_at, end, window_s)
    held = None if worst is None or sla_p95_ms is None else worst <= sla_p95_ms
    scale_in = None
    if load_drop_at is not None:
        back = np.flatnonzero((t > load_drop_at) & (desired <= base_desired))
        scale_in = float(t[back[0]] - load_drop_at) if back.size else None
    steps = np.sign(np.diff(desired[after]))
    steps = steps[steps != 0]
    changes = int((np.diff(steps) != 0).sum()) if steps.size > 1 else 0
    return AutoscalingResult(
        load_step_at=load_step_at, replicas_before=base_ready, target=target, first_new_ready_s=first_new,
        capacity_s=capacity, peak_ready=int(ready[after].max()) if after.any() else base_ready,
        sla_p95_ms=sla_p95_ms, worst_p95_ms=worst, sla_held=held, scale_in_s=scale_in,
        direction_changes=changes, interval_s=interval,
    )  # fmt: skip


def time_to_capacity(run_dir: str, target_replicas: int, load_step_at: float | None = None) -> float:
    """Chaos Toolkit probe: seconds from the load step to target capacity. Raises if never reached."""
    d = Path(run_dir)
    if load_step_at is None:
        path = d / EVENTS
        event = first_event(read_events(path), "load.step") if path.exists() else None
        if event is None:
            raise ValueError(f"no load.step event in {path}: pass load_step_at")
        load_step_at = float(event["t"])
    try:
        requests: Requests | None = load_requests(d)
    except FileNotFoundError:
        requests = None
    result = analyze_autoscaling(load_replicas(d), load_step_at, target_replicas, requests=requests)
    if result.capacity_s is None:
        raise RuntimeError(f"capacity {target_replicas} was not reached (peak {result.peak_ready} ready replicas)")
    return result.capacity_s
