"""Latency SLA analyzer: p50/p95/p99/max per phase, corrected and uncorrected, from request records.

Corrected latency is measured from the *intended* send time (open model), so a stall cannot hide
behind requests that were never sent on time (coordinated omission): corrected = start + latency
- intended. Uncorrected (from the actual send) is shown beside it. Under the closed model there
is no intended time and both are the same.

Percentiles come from HdrHistogram (3 significant digits, 1 us .. 1 h); values are bucketed with
numpy first, so 10 M records cost one pass of vector arithmetic and a few thousand histogram
updates, not 10 M Python calls. Percentiles are over answered requests with a 2xx/3xx status;
errors (including timeouts) are counted in the error rate. A request belongs to the phase in
which its intended time (else its start) falls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
from hdrh.histogram import HdrHistogram

from drillbit.rundir import REQUESTS_DIR

__all__ = ["LatencyStats", "Requests", "analyze_latency", "latency_percentile", "load_requests"]

_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3  # 1 us .. 1 h
_PHASE_ALL = "all"


@dataclass(frozen=True)
class Requests:
    """Request records as numpy columns (times in epoch seconds, latency in seconds)."""

    intended: np.ndarray
    start: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    error: np.ndarray  # bool: an error kind was recorded

    def __len__(self) -> int:
        return len(self.start)


def load_requests(run_dir: Path | str) -> Requests:
    path = Path(run_dir) / REQUESTS_DIR
    files = sorted(path.glob("*.parquet")) if path.exists() else []
    if not files:
        raise FileNotFoundError(f"no request records in {path}")
    table = ds.dataset(files, format="parquet").to_table(columns=["intended", "start", "latency", "status", "error"])
    return Requests(
        intended=table["intended"].to_numpy(zero_copy_only=False),
        start=table["start"].to_numpy(zero_copy_only=False),
        latency=table["latency"].to_numpy(zero_copy_only=False),
        status=table["status"].to_numpy(zero_copy_only=False),
        error=table["error"].is_valid().to_numpy(zero_copy_only=False),
    )


@dataclass(frozen=True)
class LatencyStats:
    phase: str
    window: tuple[float, float]
    count: int
    ok: int
    error_rate: float
    throughput_rps: float  # answered requests per second of the phase
    intended_rps: float | None  # scheduled requests per second (open model), None under the closed model
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    uncorrected_p50_ms: float | None
    uncorrected_p95_ms: float | None
    uncorrected_p99_ms: float | None
    uncorrected_max_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _histogram(seconds: np.ndarray) -> HdrHistogram:
    h = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    us = np.clip(np.rint(seconds * 1e6), _LOWEST_US, _HIGHEST_US).astype(np.int64)
    # bucket like HdrHistogram itself (3 digits: 1024 linear sub-buckets per power of two), so at most
    # ~1024 distinct values per octave remain and each lands on its own bucket's lowest value
    octave = np.floor(np.log2(us)).astype(np.int64)
    step = np.left_shift(1, np.maximum(octave - 10, 0))
    values, counts = np.unique((us // step) * step, return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        h.record_value(v, c)
    return h


def _pcts(h: HdrHistogram | None) -> list[float | None]:
    if h is None or h.get_total_count() == 0:
        return [None, None, None, None]
    return [h.get_value_at_percentile(p) / 1000 for p in (50, 95, 99)] + [h.get_max_value() / 1000]


def _phase_stats(r: Requests, name: str, lo: float, hi: float) -> LatencyStats:
    key = np.where(np.isnan(r.intended), r.start, r.intended)
    m = (key >= lo) & (key < hi)
    status, err = r.status[m], r.error[m]
    ok = (status >= 200) & (status < 400) & ~err
    lat = r.latency[m][ok]
    has_intended = ~np.isnan(r.intended[m])
    corrected = np.where(has_intended[ok], r.start[m][ok] + lat - r.intended[m][ok], lat)
    duration = max(hi - lo, 1e-9)
    count = int(m.sum())
    c = _pcts(_histogram(corrected) if lat.size else None)
    u = _pcts(_histogram(lat) if lat.size else None)
    return LatencyStats(
        phase=name, window=(lo, hi), count=count, ok=int(ok.sum()),
        error_rate=float((count - ok.sum()) / count) if count else 0.0,
        throughput_rps=float(ok.sum() / duration),
        intended_rps=float(has_intended.sum() / duration) if has_intended.any() else None,
        p50_ms=c[0], p95_ms=c[1], p99_ms=c[2], max_ms=c[3],
        uncorrected_p50_ms=u[0], uncorrected_p95_ms=u[1], uncorrected_p99_ms=u[2], uncorrected_max_ms=u[3],
    )  # fmt: skip


def analyze_latency(
    requests: Requests, phases: dict[str, tuple[float, float]] | None = None
) -> dict[str, LatencyStats]:
    """Stats per phase (name -> [start, end) epoch window), plus "all" over the whole run."""
    if len(requests) == 0:
        raise ValueError("no request records: cannot measure latency")
    key = np.where(np.isnan(requests.intended), requests.start, requests.intended)
    whole = (float(key.min()), float(np.nextafter(key.max(), math.inf)))
    out = {_PHASE_ALL: _phase_stats(requests, _PHASE_ALL, *whole)}
    for name, (lo, hi) in (phases or {}).items():
        out[name] = _phase_stats(requests, name, lo, hi)
    return out


def latency_percentile(
    run_dir: str,
    percentile: float = 95,
    corrected: bool = True,
    phase_start: float | None = None,
    phase_end: float | None = None,
) -> float:
    """Chaos Toolkit probe: a latency percentile in milliseconds. Raises when there is no data."""
    r = load_requests(run_dir)
    key = np.where(np.isnan(r.intended), r.start, r.intended)
    lo = float(key.min()) if phase_start is None else phase_start
    hi = float(np.nextafter(key.max(), math.inf)) if phase_end is None else phase_end
    m = (key >= lo) & (key < hi) & (r.status >= 200) & (r.status < 400) & ~r.error
    if not m.any():
        raise ValueError(f"no successful requests in [{lo}, {hi}): cannot measure latency")
    lat = r.latency[m]
    if corrected:
        lat = np.where(np.isnan(r.intended[m]), lat, r.start[m] + lat - r.intended[m])
    return float(_histogram(lat).get_value_at_percentile(percentile) / 1000)
