"""Autoscaling analyzer: load step -> first new ready replica -> target capacity; SLA meanwhile; scale-in.

Over replica samples (t, region, desired, ready; summed over regions per sample time) and,
optionally, request records (``REQUEST_SCHEMA`` shape: a DataFrame with intended, start, latency,
status, error, or ``drillbit.probes.latency.Requests``):

- scale-out: load step -> first sample whose desired replicas (summed over regions) rose above
  the value before the step (``scale_out_s``): the autoscaler decided to scale;
- first new replica: load step -> first sample, at or after scale-out, with a ready replica whose
  identity (``ready_ids``: region/pid) was never seen before scale-out. A replica whose readiness
  probe missed once at the step and answers again is not new, nor is a killed replica's
  replacement. Without identities (a target that cannot tell, older runs): more ready replicas
  than ever seen before scale-out, at or after it (``identified: false``);
- capacity: load step -> first sample with ready >= target (None: never reached in the samples);
- SLA during scale-out: p95 of the corrected latency (from the intended send time: a stall is not
  hidden) of successful requests, over windows of ``window_s`` sliding by half a window from the
  step to capacity (or the end of the samples); the worst window against ``sla_p95_ms``. Windows
  with fewer than ``min_requests`` requests are not judged; ``percentile`` replaces numpy's p95;
- scale-in: load drop -> desired back at ``min_replicas`` (default: desired before the step), and
  -> ready back there; flaps: sample-to-sample moves of desired against the load (down while the
  load is high, up after it dropped); direction changes of desired after the step.
Bounds: every time is late by at most one replica sampling interval (``interval_s``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drillbit.core.events import first_event, read_events
from drillbit.core.rundir import EVENTS
from drillbit.probes.latency import Requests, load_requests
from drillbit.probes.replicas import load_replicas

__all__ = [
    "AutoscalingResult",
    "CapacityNotReached",
    "analyze_autoscaling",
    "autoscaling_report",
    "time_to_capacity",
    "windowed_percentile",
]

Percentile = Callable[[np.ndarray], float]


class CapacityNotReached(RuntimeError):
    """The target capacity was not reached within the samples: there is no time-to-capacity number."""


@dataclass(frozen=True)
class AutoscalingResult:
    load_step_at: float
    replicas_before: int  # ready replicas at the step
    desired_before: int
    target: int
    scale_out_s: float | None  # load step -> desired replicas above desired_before (None: never)
    first_new_ready_s: float | None  # None: no new ready replica within the samples
    identified: bool  # new replicas told apart by identity (False: by count, above any count before the step)
    capacity_s: float | None  # None: capacity never reached within the samples
    peak_ready: int
    sla_p95_ms: float | None
    worst_p95_ms: float | None  # worst sliding-window p95 during scale-out (None: no window with enough requests)
    sla_held: bool | None  # None: not judged (no request data or no SLA)
    windows_judged: int
    error_rate_scale_out: float | None  # failed / all requests during scale-out
    load_drop_at: float | None
    min_replicas: int
    scale_in_s: float | None  # load drop -> desired back at min_replicas (None: not observed / no drop)
    scale_in_ready_s: float | None  # load drop -> ready back at min_replicas
    flaps: int
    direction_changes: int
    interval_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _totals(replicas: pd.DataFrame) -> pd.DataFrame:
    return replicas.groupby("t", sort=True)[["desired", "ready"]].sum().reset_index()


def _identities(replicas: pd.DataFrame) -> pd.Series | None:
    """Sample time -> the set of ready replicas' identities (region/id); None when not recorded."""
    if "ready_ids" not in replicas.columns or replicas["ready_ids"].isna().all():
        return None
    rows = replicas.dropna(subset=["ready_ids"])
    ids = [{f"{region}/{i}" for i in ready} for region, ready in zip(rows["region"], rows["ready_ids"], strict=True)]
    return pd.Series(ids, index=rows["t"].to_numpy()).groupby(level=0).agg(lambda s: set().union(*s))


def _first_new(replicas: pd.DataFrame, tot: pd.DataFrame, from_t: float | None) -> float | None:
    """Time of the first sample at or after ``from_t`` (scale-out) showing a new ready replica."""
    if from_t is None:
        return None
    ids = _identities(replicas)
    t, ready = tot["t"].to_numpy(dtype=float), tot["ready"].to_numpy(dtype=np.int64)
    # known: every replica seen before the autoscaler acted (a killed replica's replacement is not a scale-out)
    if ids is None:
        seen = int(ready[t < from_t].max())
        new = np.flatnonzero((t >= from_t) & (ready > seen))
        return float(t[new[0]]) if new.size else None
    earlier = ids[ids.index < from_t]
    known: set[str] = set().union(*earlier) if len(earlier) else set()
    return next((float(at) for at, now in ids[ids.index >= from_t].items() if now - known), None)


def _request_arrays(requests: pd.DataFrame | Requests) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time key, corrected latency, ok) per request."""
    if isinstance(requests, pd.DataFrame):
        intended = requests["intended"].to_numpy(dtype=float)
        start = requests["start"].to_numpy(dtype=float)
        latency = requests["latency"].to_numpy(dtype=float)
        status = requests["status"].fillna(0).to_numpy(dtype=np.int64)
        error = requests["error"].notna().to_numpy()
    else:
        intended, start, latency = requests.intended, requests.start, requests.latency
        status, error = requests.status.astype(np.int64), requests.error
    closed = np.isnan(intended)
    key = np.where(closed, start, intended)
    corrected = np.where(closed, latency, start + latency - intended)
    ok = (status >= 200) & (status < 400) & ~error & ~np.isnan(corrected)
    return key, corrected, ok


def windowed_percentile(
    key: np.ndarray,
    values: np.ndarray,
    lo: float,
    hi: float,
    window: float,
    *,
    min_count: int = 20,
    percentile: Percentile | None = None,
) -> list[tuple[float, float, int]]:
    """(window start, p95, count) for windows [w, w + window) from ``lo`` sliding by window/2 up to ``hi``.

    At least one window; windows with fewer than ``min_count`` values are left out.
    """
    order = np.argsort(key, kind="stable")
    k, v = key[order], values[order]
    # at least one window; counted, not np.arange(lo, hi - window + eps): at epoch scale eps vanishes
    count = int(np.floor(max(hi - window - lo, 0.0) / (window / 2) + 1e-9)) + 1
    starts = lo + np.arange(count) * (window / 2)
    a = np.searchsorted(k, starts, side="left")
    b = np.searchsorted(k, starts + window, side="left")
    p95 = percentile or (lambda x: float(np.percentile(x, 95)))
    return [(float(w), float(p95(v[i:j])), int(j - i)) for w, i, j in zip(starts, a, b, strict=True)
            if j - i >= min_count]  # fmt: skip


def analyze_autoscaling(
    replicas: pd.DataFrame,
    load_step_at: float,
    target: int,
    *,
    requests: pd.DataFrame | Requests | None = None,
    sla_p95_ms: float | None = 100.0,
    window_s: float = 5.0,
    load_drop_at: float | None = None,
    min_replicas: int | None = None,
    min_requests: int = 20,
    percentile: Percentile | None = None,
) -> AutoscalingResult:
    if replicas.empty:
        raise ValueError("no replica samples: cannot measure autoscaling")
    tot = _totals(replicas)
    t = tot["t"].to_numpy(dtype=float)
    ready = tot["ready"].to_numpy(dtype=np.int64)
    desired = tot["desired"].to_numpy(dtype=np.int64)
    interval = float(np.median(np.diff(t))) if len(t) > 1 else float("nan")
    before = np.flatnonzero(t <= load_step_at)
    if before.size == 0:
        raise ValueError("no replica sample at or before the load step: cannot tell what scaled")
    base_ready, base_desired = int(ready[before[-1]]), int(desired[before[-1]])
    after = t > load_step_at
    rose = np.flatnonzero(after & (desired > base_desired))
    scaled_at = float(t[rose[0]]) if rose.size else None
    new_at = _first_new(replicas, tot, scaled_at)
    full = np.flatnonzero(after & (ready >= target))
    first_new = None if new_at is None else new_at - load_step_at
    capacity = float(t[full[0]] - load_step_at) if full.size else None

    worst, judged, err_rate = None, 0, None
    if requests is not None and len(requests):
        key, corrected, ok = _request_arrays(requests)
        end = load_step_at + capacity if capacity is not None else float(t[-1])
        windows = windowed_percentile(key[ok], corrected[ok], load_step_at, end, window_s,
                                      min_count=min_requests, percentile=percentile)  # fmt: skip
        judged = len(windows)
        worst = max(p for _, p, _ in windows) * 1000 if windows else None
        during = (key >= load_step_at) & (key < max(end, load_step_at + window_s))
        err_rate = float((~ok[during]).mean()) if during.any() else None
    held = None if worst is None or sla_p95_ms is None else worst <= sla_p95_ms

    floor = base_desired if min_replicas is None else min_replicas
    scale_in = scale_in_ready = None
    if load_drop_at is not None:
        dropped = t > load_drop_at
        back = np.flatnonzero(dropped & (desired <= floor))
        back_ready = np.flatnonzero(dropped & (ready <= floor))
        scale_in = float(t[back[0]] - load_drop_at) if back.size else None
        scale_in_ready = float(t[back_ready[0]] - load_drop_at) if back_ready.size else None
    moves = np.diff(desired[after]) if after.sum() > 1 else np.zeros(0, dtype=np.int64)
    moved_at = t[after][1:]
    high = moved_at <= load_drop_at if load_drop_at is not None else np.ones(moves.size, dtype=bool)
    flaps = int(((moves < 0) & high).sum() + ((moves > 0) & ~high).sum())
    signs = np.sign(moves[moves != 0])
    changes = int((np.diff(signs) != 0).sum()) if signs.size > 1 else 0
    peak = int(ready[after].max()) if after.any() else base_ready
    return AutoscalingResult(
        load_step_at=load_step_at, replicas_before=base_ready, desired_before=base_desired, target=target,
        scale_out_s=None if scaled_at is None else scaled_at - load_step_at, first_new_ready_s=first_new,
        identified=_identities(replicas) is not None, capacity_s=capacity, peak_ready=peak,
        sla_p95_ms=sla_p95_ms, worst_p95_ms=worst, sla_held=held, windows_judged=judged, error_rate_scale_out=err_rate,
        load_drop_at=load_drop_at, min_replicas=floor, scale_in_s=scale_in, scale_in_ready_s=scale_in_ready,
        flaps=flaps, direction_changes=changes, interval_s=interval,
    )  # fmt: skip


def _event_time(run_dir: Path, kind: str) -> float | None:
    path = run_dir / EVENTS
    event = first_event(read_events(path), kind) if path.exists() else None
    return float(event["t"]) if event is not None else None


def _analyze_run(
    run_dir: str,
    target_replicas: int,
    load_step_at: float | None,
    load_drop_at: float | None,
    sla_p95_ms: float | None,
    window_s: float,
    min_replicas: int | None,
) -> AutoscalingResult:
    d = Path(run_dir)
    step = load_step_at if load_step_at is not None else _event_time(d, "load.step")
    if step is None:
        raise ValueError(f"no load.step event in {d / EVENTS}: pass load_step_at")
    drop = load_drop_at if load_drop_at is not None else _event_time(d, "load.drop")
    try:
        requests: Requests | None = load_requests(d)
    except FileNotFoundError:
        requests = None
    return analyze_autoscaling(load_replicas(d), step, target_replicas, requests=requests, sla_p95_ms=sla_p95_ms,
                               window_s=window_s, load_drop_at=drop, min_replicas=min_replicas)  # fmt: skip


def autoscaling_report(
    run_dir: str,
    target_replicas: int,
    load_step_at: float | None = None,
    load_drop_at: float | None = None,
    sla_p95_ms: float | None = 100.0,
    window_s: float = 5.0,
    min_replicas: int | None = None,
) -> dict[str, Any]:
    """Chaos Toolkit probe: every autoscaling figure. The step/drop default to the run's
    ``load.step`` / ``load.drop`` events; raises without replica samples or a load step."""
    return _analyze_run(run_dir, target_replicas, load_step_at, load_drop_at, sla_p95_ms, window_s,
                        min_replicas).to_dict()  # fmt: skip


def time_to_capacity(run_dir: str, target_replicas: int, load_step_at: float | None = None) -> float:
    """Chaos Toolkit probe: seconds from the load step to target capacity. Raises if never reached."""
    result = _analyze_run(run_dir, target_replicas, load_step_at, None, None, 5.0, None)
    if result.capacity_s is None:
        raise CapacityNotReached(
            f"capacity {target_replicas} was not reached (peak {result.peak_ready} ready replicas)"
        )
    return result.capacity_s
