"""Availability sampler and the RTO analyzer.

Sampler: a synthetic transaction (an HTTP request) every ``interval`` (100 ms by default), each
with its own timeout, recorded as (t = send time, ok, latency, status, error).

RTO (ARCHITECTURE.md): from the fault's injection to the start of sustained recovery, the first
instant after which every probe succeeds (or the error rate stays under a threshold) for a
stability window. Precisely:

- a probe is *good* when it answered 2xx within ``slow_after`` seconds (default: its timeout);
- a probe's *handling time* is its answer's arrival minus half a normal round trip (the median
  latency of good probes): just after the send for a fast answer, the freeze's end for an answer
  a freeze held back. Not the send time: in a freeze, a probe sent late in the freeze is handled
  only when the freeze ends, and that is the first evidence of recovery;
- recovery lies between the handling of the last failed probe and of the first good probe of the
  first stable run after the first failure: ``rto_s`` is the midpoint (error within half a
  sampling interval, stated as ``error_bound_s``), ``rto_upper_s`` the later end (never below the
  truth, at most one interval above it: the conservative figure for an audit);
- time to detect: fault -> completion (or timeout) of the first failed probe;
- downtime: the time covered by failing probes after the fault (their count x interval);
- if nothing failed, RTO is 0; if the samples end before a stable run, there is no RTO (the
  result says ``recovered: false``): never an invented number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from drillbit.clock import Clock
from drillbit.events import fault_time
from drillbit.rundir import AVAILABILITY, AVAILABILITY_SCHEMA
from probes.samplers import ParquetSink, TickSampler

__all__ = ["AvailabilitySampler", "RtoResult", "analyze_rto", "load_availability", "rto_seconds", "service_recovered"]


class AvailabilitySampler:
    """GET (or any method) ``url`` every ``interval`` s; 2xx within ``timeout`` is ok."""

    def __init__(
        self,
        url: str,
        run_dir: Path,
        *,
        clock: Clock,
        interval: float = 0.1,
        timeout: float = 1.0,
        method: str = "GET",
    ) -> None:
        self.url, self.method, self.timeout, self.interval = url, method, timeout, interval
        self.clock = clock
        self.sink = ParquetSink(Path(run_dir) / AVAILABILITY, AVAILABILITY_SCHEMA)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=8)
        self._client = httpx.Client(timeout=timeout, limits=limits)
        self._ticks = TickSampler(
            self._probe,
            clock=clock,
            interval=interval,
            max_in_flight=math.ceil(timeout / interval) + 2,
            on_flush=self.sink.flush,
            name="availability",
        )

    def _probe(self, t: float) -> None:
        status, error = 0, None
        try:
            r = self._client.request(self.method, self.url)
            status = r.status_code
            error = None if 200 <= status < 300 else "http"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.TransportError:
            error = "connection"
        latency = self.clock.now() - t
        ok = error is None
        self.sink.add({"t": t, "ok": ok, "latency": latency if status else math.nan, "status": status, "error": error})

    def start(self) -> AvailabilitySampler:
        self._ticks.start()
        return self

    def stop(self) -> None:
        self._ticks.stop()
        self._client.close()
        self.sink.close()

    def __enter__(self) -> AvailabilitySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RtoResult:
    fault_at: float
    recovered: bool  # False: the samples ended before sustained recovery; rto_s is then None
    rto_s: float | None  # best estimate: midway between the last failed and the first good probe
    rto_upper_s: float | None  # never below the truth: the first good probe's handling
    recovered_at: float | None
    detect_s: float | None  # None when no probe failed after the fault
    downtime_s: float
    failed_probes: int
    probes: int
    interval_s: float
    error_bound_s: float  # |rto_s - truth| <= this (half the gap between the probes around recovery)
    stability_window_s: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_availability(run_dir: Path | str) -> pd.DataFrame:
    path = Path(run_dir) / AVAILABILITY
    if not path.exists():
        raise FileNotFoundError(f"no availability samples in {run_dir} ({AVAILABILITY})")
    return pq.read_table(path).to_pandas().sort_values("t", kind="stable").reset_index(drop=True)


def analyze_rto(
    samples: pd.DataFrame,
    fault_at: float,
    *,
    stability_window: float = 5.0,
    max_error_rate: float = 0.0,
    slow_after: float | None = None,
    interval: float | None = None,
) -> RtoResult:
    """RTO from availability samples (columns t, ok, latency); see the module docstring."""
    s = samples[samples["t"] >= fault_at]
    if s.empty:
        raise ValueError("no availability samples after the fault: cannot measure RTO")
    t = s["t"].to_numpy(dtype=float)
    lat = s["latency"].to_numpy(dtype=float)
    good = s["ok"].to_numpy(dtype=bool)
    if slow_after is not None:
        good = good & (np.nan_to_num(lat, nan=np.inf) <= slow_after)
    step = interval if interval is not None else float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    # When did the server handle a probe? About half a normal round trip before its answer arrived:
    # for a fast answer that is just after the send, for an answer held by a freeze it is the freeze's
    # end. ``done`` estimates that instant (a timeout "completes" at send + timeout).
    all_good = samples["ok"].to_numpy(dtype=bool) & ~np.isnan(samples["latency"].to_numpy(dtype=float))
    half_rtt = float(np.median(samples["latency"].to_numpy(dtype=float)[all_good])) / 2 if all_good.any() else 0.0
    done = t + np.maximum(np.nan_to_num(lat, nan=0.0) - half_rtt, 0.0)
    method = (
        f"probe every {step * 1000:.0f} ms; recovery = completion of the first good probe of the first run of "
        f"{stability_window:g} s with error rate <= {max_error_rate:g}"
    )
    bad = np.flatnonzero(~good)
    common: dict[str, Any] = {
        "fault_at": fault_at,
        "probes": len(t),
        "interval_s": step,
        "stability_window_s": stability_window,
        "method": method,
    }
    if bad.size == 0:
        return RtoResult(
            recovered=True,
            rto_s=0.0,
            rto_upper_s=0.0,
            recovered_at=fault_at,
            detect_s=None,
            downtime_s=0.0,
            failed_probes=0,
            error_bound_s=step,
            **common,
        )
    first_bad = int(bad[0])
    detect = float(done[first_bad] - fault_at)
    downtime = float(bad.size * step)
    start = _stable_start(t, good, first_bad, stability_window, max_error_rate)
    if start is None:
        return RtoResult(
            recovered=False,
            rto_s=None,
            rto_upper_s=None,
            recovered_at=None,
            detect_s=detect,
            downtime_s=downtime,
            failed_probes=int(bad.size),
            error_bound_s=step,
            **common,
        )
    upper = float(done[start])
    before = start - 1
    if before >= 0 and not good[before]:
        # recovery happened between the handling of the last failed probe and of this one
        recovered_at, bound = (float(done[before]) + upper) / 2, (upper - float(done[before])) / 2
    else:
        recovered_at, bound = upper, step
    return RtoResult(
        recovered=True, rto_s=recovered_at - fault_at, rto_upper_s=upper - fault_at, recovered_at=recovered_at,
        detect_s=detect, downtime_s=downtime, failed_probes=int(bad.size), error_bound_s=bound, **common,
    )  # fmt: skip


def _stable_start(t: np.ndarray, good: np.ndarray, after: int, window: float, max_error_rate: float) -> int | None:
    """Index of the first good probe after ``after`` that opens a window meeting the error threshold."""
    n = len(t)
    bad_cum = np.concatenate([[0], np.cumsum(~good)])
    candidates = np.flatnonzero(good[after:]) + after
    if candidates.size == 0:
        return None
    ends = np.searchsorted(t, t[candidates] + window, side="left")  # probes in [t_i, t_i + window)
    covered = ends < n  # the samples must outlast the window
    counts = ends - candidates
    errors = bad_cum[ends] - bad_cum[candidates]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, errors / np.maximum(counts, 1), 1.0)
    ok = covered & (rate <= max_error_rate)
    hits = np.flatnonzero(ok)
    return int(candidates[hits[0]]) if hits.size else None


def rto_seconds(
    run_dir: str, fault_at: float | None = None, stability_window: float = 5.0, max_error_rate: float = 0.0
) -> float:
    """Chaos Toolkit probe: the measured RTO in seconds. Raises when it cannot be measured."""
    d = Path(run_dir)
    result = analyze_rto(
        load_availability(d), fault_time(d, fault_at), stability_window=stability_window, max_error_rate=max_error_rate
    )
    if result.rto_s is None:
        raise RuntimeError(f"the service did not recover within the samples (detected after {result.detect_s} s)")
    return result.rto_s


def service_recovered(run_dir: str, fault_at: float | None = None, stability_window: float = 5.0) -> bool:
    """Chaos Toolkit probe: True when sustained recovery was observed after the fault."""
    d = Path(run_dir)
    return analyze_rto(load_availability(d), fault_time(d, fault_at), stability_window=stability_window).recovered
