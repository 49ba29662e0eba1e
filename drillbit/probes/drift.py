"""Drift over a soak: how fast each harness process's memory grows, and how the latency moves with time.

Pure functions over a run directory: the harness samples (``samples/harness.parquet``, and for remote
workers ``samples/harness_remote.parquet``: ``drillbit.core.rundir.read_harness``) and the request
records (``drillbit.probes.latency.load_requests``).

The soak is the load's span: the first request's intended send time (closed model: its start) to
the last one's; without request records, the harness samples' span. Its first ``WARMUP_FRACTION``
(10 %), at most ``WARMUP_MAX_S`` (60 s), is the warm-up (imports, connection pools, the first part
files, Locust's start) and is left out of every fit.

- Memory: per harness process (the drill process, the Locust master or lone generator, each worker,
  remote ones included), its resident memory (RSS) samples inside the soak after the warm-up, fitted
  by ordinary least squares: the slope in MB/min (MB = 10^6 bytes), its standard error, R² and the
  samples' spread about the line. The standard error assumes independent residuals, which samples a
  second apart are not (an allocator grows in steps): it understates the uncertainty, so a slope
  whose band of ``STRADDLE_SE`` standard errors reaches the target is not a pass (``drift_reading``).
- Latency: the soak after the warm-up is cut into equal windows of ``WINDOW_S`` (60 s), or a tenth
  of it when that is shorter (a short run still has ten); each window's p50 and p95 are the latency
  SLA's own (corrected from the intended send time, failures at their time to failure:
  ``drillbit.probes.latency.analyze_latency``), and the drift is the p95's least-squares slope in ms
  per 10 min and the last window's p95 over the first's.

A soak shorter than ``MIN_SOAK_S`` (10 min) is measured and reported but too short to judge:
``too_short`` says so, and a verdict on it is INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from drillbit.core.measurements import DriftMeasurement, LatencyDrift, LatencyWindow, ProcessMemory
from drillbit.core.rundir import read_harness
from drillbit.probes.latency import Requests, analyze_latency, load_requests

__all__ = [
    "DRIFT_METRICS",
    "MB",
    "MEMORY_SLOPE_METRIC",
    "MIN_SAMPLES",
    "MIN_SOAK_S",
    "P95_RATIO_METRIC",
    "P95_SLOPE_METRIC",
    "STRADDLE_SE",
    "WARMUP_FRACTION",
    "WARMUP_MAX_S",
    "WINDOW_S",
    "DriftReading",
    "Fit",
    "RssSeries",
    "analyze_drift",
    "drift_reading",
    "fit_line",
    "latency_drift",
    "process_memory",
    "process_name",
    "rss_series",
    "warmup_s",
    "window_s",
]

#: bytes in the MB of "MB/min" (SI)
MB = 1e6
WARMUP_FRACTION = 0.10
WARMUP_MAX_S = 60.0
WINDOW_S = 60.0
#: a soak shorter than this (10 min) is too short to judge its drift
MIN_SOAK_S = 600.0
#: fewer samples than this after the warm-up: no slope
MIN_SAMPLES = 10
#: a slope within this many standard errors of its target is not a pass
STRADDLE_SE = 2.0
#: the SLA metrics read from the drift measurement (drillbit.sla.METRICS)
MEMORY_SLOPE_METRIC = "harness_memory_slope_mb_min"
P95_SLOPE_METRIC = "p95_drift_ms_per_10min"
P95_RATIO_METRIC = "p95_drift_ratio"
DRIFT_METRICS = (MEMORY_SLOPE_METRIC, P95_SLOPE_METRIC, P95_RATIO_METRIC)


@dataclass(frozen=True)
class Fit:
    """An ordinary least-squares line through (x, y)."""

    slope: float  # y units per x unit
    mean_y: float  # the line's value at the mean of x
    stderr: float | None  # the slope's standard error; None with two points
    r2: float | None  # None: y constant
    residual_sd: float | None  # the points' spread about the line; None with two points
    n: int


def fit_line(x: np.ndarray, y: np.ndarray) -> Fit:
    """Least squares (x centred first: epoch seconds squared lose digits). Raises ValueError with fewer
    than two points or a single x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 2 or len(y) != n:
        raise ValueError(f"a line needs at least two points ({n} given)")
    x0, y0 = x - x.mean(), y - y.mean()
    sxx = float(np.dot(x0, x0))
    if sxx == 0:
        raise ValueError("every point at the same time: no slope")
    slope = float(np.dot(x0, y0)) / sxx
    resid = y0 - slope * x0
    ss_res, ss_tot = float(np.dot(resid, resid)), float(np.dot(y0, y0))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None
    sd = math.sqrt(ss_res / (n - 2)) if n > 2 else None
    return Fit(slope=slope, mean_y=float(y.mean()), stderr=None if sd is None else sd / math.sqrt(sxx), r2=r2,
               residual_sd=sd, n=n)  # fmt: skip


def warmup_s(span_s: float) -> float:
    """The warm-up left out at a soak's start: 10 % of it, at most 60 s."""
    return max(0.0, min(WARMUP_FRACTION * span_s, WARMUP_MAX_S))


def window_s(judged_s: float) -> float:
    """The latency window: 60 s, or a tenth of the judged span when that is shorter."""
    return min(WINDOW_S, judged_s / 10)


def process_name(role: str, pid: int, host: str, remote: bool, worker: int | None) -> str:
    """A harness process in words, as the load's saturation judgement names it too."""
    if remote:
        return f"remote worker {worker} (pid {pid} on {host})"
    return f"{role} (pid {pid})"


@dataclass(frozen=True)
class RssSeries:
    """One harness process's samples, whole (the report draws them)."""

    name: str
    role: str
    pid: int
    host: str
    remote: bool
    t: np.ndarray  # epoch s
    rss_bytes: np.ndarray
    cpu_percent: np.ndarray  # NaN where the sample had no interval


def rss_series(table: pa.Table) -> list[RssSeries]:
    """Harness samples (``HARNESS_SCHEMA``) split per process (host, pid), each in time order."""
    cols = {name: table.column(name).to_pylist() for name in ("role", "worker", "pid", "host", "remote")}
    t = table.column("t").to_numpy(zero_copy_only=False).astype(np.float64)
    rss = table.column("rss_bytes").to_numpy(zero_copy_only=False).astype(np.float64)
    cpu = table.column("cpu_percent").to_numpy(zero_copy_only=False).astype(np.float64)
    groups: dict[tuple[str, int, bool], list[int]] = {}
    for i, key in enumerate(zip(cols["host"], cols["pid"], cols["remote"], strict=True)):
        groups.setdefault(key, []).append(i)
    out = []
    for (host, pid, remote), rows in groups.items():
        idx = np.array(rows)[np.argsort(t[rows], kind="stable")]
        first = rows[0]
        role, worker = str(cols["role"][first]), cols["worker"][first]
        out.append(RssSeries(process_name(role, pid, host, bool(remote), worker), role, int(pid), str(host),
                             bool(remote), t[idx], rss[idx], cpu[idx]))  # fmt: skip
    order = {"drill": 0, "master": 1, "generator": 2, "worker": 3}
    return sorted(out, key=lambda s: (s.remote, order.get(s.role, 9), s.host, s.pid))


def process_memory(series: RssSeries, start: float, end: float) -> ProcessMemory:
    """One process's memory figures over [start, end] (the soak after its warm-up)."""
    inside = (series.t >= start) & (series.t <= end)
    t, rss, cpu = series.t[inside], series.rss_bytes[inside], series.cpu_percent[inside]
    n = len(t)
    fit = fit_line(t, rss / MB) if n >= MIN_SAMPLES and t[-1] > t[0] else None
    finite_cpu = cpu[np.isfinite(cpu)]
    return ProcessMemory(
        name=series.name, role=series.role, pid=series.pid, host=series.host, remote=series.remote, samples=n,
        interval_s=float(np.median(np.diff(t))) if n > 1 else None,
        first_t=float(t[0]) if n else None, last_t=float(t[-1]) if n else None,
        covered_s=float(t[-1] - t[0]) if n > 1 else 0.0,
        rss_first_mb=float(rss[0] / MB) if n else None, rss_last_mb=float(rss[-1] / MB) if n else None,
        rss_peak_mb=float(rss.max() / MB) if n else None,
        slope_mb_per_min=fit.slope * 60 if fit else None,
        slope_stderr_mb_per_min=fit.stderr * 60 if fit and fit.stderr is not None else None,
        r2=fit.r2 if fit else None, residual_sd_mb=fit.residual_sd if fit else None,
        cpu_median_percent=float(np.median(finite_cpu)) if finite_cpu.size else None,
    )  # fmt: skip


def _ratio(last: float | None, first: float | None) -> float | None:
    return last / first if last is not None and first is not None and first > 0 else None


def latency_drift(requests: Requests, start: float, end: float) -> LatencyDrift:
    """p50 and p95 per equal window of [start, end] and their drift; raises ValueError when there is no
    room for a window or no request with an outcome in any."""
    width = window_s(end - start)
    count = math.floor((end - start) / width + 1e-6) if width > 0 else 0
    if count < 2:
        raise ValueError(f"{end - start:.1f} s of requests after the warm-up: too short for latency windows")
    bounds = {f"w{i}": (start + i * width, start + (i + 1) * width) for i in range(count)}
    stats = analyze_latency(requests, bounds)
    windows = [LatencyWindow(start=lo, end=hi, requests=stats[k].ok + stats[k].errors, errors=stats[k].errors,
                             p50_ms=stats[k].p50_ms, p95_ms=stats[k].p95_ms)
               for k, (lo, hi) in bounds.items()]  # fmt: skip
    measured = [w for w in windows if w.p95_ms is not None]
    if not measured:
        raise ValueError("no request with an outcome in the soak after the warm-up")
    mid = np.array([(w.start + w.end) / 2 for w in measured])
    p95_fit = fit_line(mid, np.array([w.p95_ms for w in measured])) if len(measured) > 1 else None
    p50_fit = fit_line(mid, np.array([w.p50_ms for w in measured])) if len(measured) > 1 else None
    return LatencyDrift(
        window_s=width, windows=windows,
        p95_slope_ms_per_10min=p95_fit.slope * 600 if p95_fit else None,
        p95_slope_stderr_ms_per_10min=p95_fit.stderr * 600 if p95_fit and p95_fit.stderr is not None else None,
        p95_r2=p95_fit.r2 if p95_fit else None,
        p50_slope_ms_per_10min=p50_fit.slope * 600 if p50_fit else None,
        p95_ratio=_ratio(measured[-1].p95_ms, measured[0].p95_ms),
        p50_ratio=_ratio(measured[-1].p50_ms, measured[0].p50_ms),
    )  # fmt: skip


METHOD = (f"the soak is the load's first to last request; its first {WARMUP_FRACTION:.0%} (at most "
          f"{WARMUP_MAX_S:.0f} s) is a warm-up, left out. Memory: each harness process's resident set size "
          f"(psutil; a remote worker's read by itself and sent with its records), a least-squares line per "
          f"process, MB = 10^6 bytes; the slope's standard error assumes independent residuals (it understates "
          f"the uncertainty of samples a second apart). Latency: corrected p50/p95 (from the intended send time, "
          f"failures at their time to failure) per window of {WINDOW_S:.0f} s (a tenth of the soak when "
          f"shorter), the p95's least-squares slope and last/first ratio. A soak shorter than "
          f"{MIN_SOAK_S / 60:.0f} min is too short to judge.")  # fmt: skip


def analyze_drift(run_dir: Path | str, *, min_soak_s: float = MIN_SOAK_S) -> DriftMeasurement:
    """The drift of a run's soak. Raises FileNotFoundError when the run has no harness samples (no load ran)."""
    series = rss_series(read_harness(run_dir))
    if not series:
        raise ValueError(f"{run_dir}: the harness sample files hold no sample")
    requests: Requests | None = None
    latency_problem: str | None = None
    try:
        requests = load_requests(run_dir)
        if not len(requests):
            raise ValueError("no request records")
    except (FileNotFoundError, ValueError) as err:
        requests, latency_problem = None, f"no latency drift: {err}"
    if requests is not None:
        key = requests.key()
        start, last = float(np.nanmin(key)), float(np.nanmax(key))
        sent = int(np.count_nonzero(~np.isnan(key)))
        end = last + ((last - start) / (sent - 1) if sent > 1 else 0.0)  # n requests at rate r span n / r
        span_from = "requests"
    else:
        start = float(min(s.t[0] for s in series if len(s.t)))
        end = float(max(s.t[-1] for s in series if len(s.t)))
        span_from = "harness samples"
    span = end - start
    warm = warmup_s(span)
    judged = span - warm
    too_short = None
    if span < min_soak_s:
        too_short = (f"the soak lasted {span / 60:.1f} min ({span_from}), less than the {min_soak_s / 60:.0f} min "
                     "needed to judge drift")  # fmt: skip
    processes = [process_memory(s, start + warm, end) for s in series]
    sloped = [p for p in processes if p.slope_mb_per_min is not None]
    worst = max(sloped, key=lambda p: p.slope_mb_per_min or 0.0, default=None)
    latency = None
    if requests is not None:
        try:
            latency = latency_drift(requests, start + warm, end)
        except ValueError as err:
            latency_problem = str(err)
    return DriftMeasurement(
        start=start, end=end, span_s=span, span_from=span_from, warmup_s=warm, judged_s=judged, min_soak_s=min_soak_s,
        too_short=too_short, processes=processes, worst_process=worst.name if worst else None,
        worst_slope_mb_per_min=worst.slope_mb_per_min if worst else None, latency=latency,
        latency_problem=latency_problem, method=METHOD,
    )  # fmt: skip


@dataclass(frozen=True)
class DriftReading:
    """What a drift SLA reads (as ``drillbit.verdicts.Reading``: the engine wraps it)."""

    value: float | None
    how: str
    why: str | None = None  # no value: why (INCONCLUSIVE)
    doubt: str | None = None  # a value the samples do not vouch for: INCONCLUSIVE unless it breaches


_MEETS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t, ">": lambda v, t: v > t, ">=": lambda v, t: v >= t,
          "==": lambda v, t: v == t}  # fmt: skip


def _memory_reading(m: DriftMeasurement, op: str, target: float) -> DriftReading:
    names = "; ".join(f"{p.name} {p.slope_mb_per_min:+.3f} MB/min" if p.slope_mb_per_min is not None
                      else f"{p.name} unmeasured ({p.samples} samples)" for p in m.processes)  # fmt: skip
    intervals = [p.interval_s for p in m.processes if p.interval_s]
    every = f"every {float(np.median(intervals)):.1f} s" if intervals else "(no interval)"
    how = (f"resident memory of {len(m.processes)} harness process(es) sampled {every} over the soak's "
           f"{m.judged_s / 60:.1f} min after a {m.warmup_s:.0f} s warm-up; least-squares slope per process, the "
           f"steepest judged (MB = 10^6 bytes): {names}")  # fmt: skip
    if m.too_short:
        worst = m.worst_slope_mb_per_min
        shown = "" if worst is None else f" (steepest measured: {m.worst_process} {worst:+.3f} MB/min, not judged)"
        return DriftReading(None, how, m.too_short + shown)
    if m.worst_slope_mb_per_min is None:
        return DriftReading(None, how, f"no harness process had {MIN_SAMPLES} memory samples after the warm-up")
    doubts = []
    short = [p.name for p in m.processes if p.slope_mb_per_min is None or p.covered_s < 0.9 * m.judged_s]
    if short:
        doubts.append(f"not sampled through the soak: {', '.join(short)} (a process that started late, died or "
                      "stopped reporting: its memory over the rest is unknown)")  # fmt: skip
    if op in ("<", "<="):
        wide = [f"{p.name} {p.slope_mb_per_min:+.3f} ± {STRADDLE_SE * p.slope_stderr_mb_per_min:.3f} MB/min"
                for p in m.processes if p.slope_mb_per_min is not None and p.slope_stderr_mb_per_min is not None
                and _MEETS[op](p.slope_mb_per_min, target)
                and not _MEETS[op](p.slope_mb_per_min + STRADDLE_SE * p.slope_stderr_mb_per_min, target)]  # fmt: skip
        if wide:
            doubts.append(f"within {STRADDLE_SE:g} standard errors of the target {op} {target:g} MB/min: "
                          f"{'; '.join(wide)} (sample longer)")  # fmt: skip
    return DriftReading(m.worst_slope_mb_per_min, how, doubt="; ".join(doubts) or None)


def _latency_reading(m: DriftMeasurement, metric: str) -> DriftReading:
    lat = m.latency
    if lat is None:
        return DriftReading(None, "latency per window of the soak", m.latency_problem or "no latency drift measured")
    measured = [w for w in lat.windows if w.p95_ms is not None]
    first, last = (measured[0].p95_ms, measured[-1].p95_ms) if measured else (None, None)
    slope = lat.p95_slope_ms_per_10min
    how = (f"corrected p95 per {lat.window_s:.0f} s window ({len(measured)} of {len(lat.windows)} windows with "
           f"requests) over the soak's {m.judged_s / 60:.1f} min after a {m.warmup_s:.0f} s warm-up: first "
           f"{first if first is None else f'{first:.1f}'} ms, last {last if last is None else f'{last:.1f}'} ms; "
           f"least-squares slope {'—' if slope is None else f'{slope:+.2f}'} ms per 10 min")  # fmt: skip
    if m.too_short:
        return DriftReading(None, how, m.too_short)
    value = lat.p95_ratio if metric == P95_RATIO_METRIC else slope
    if value is None:
        return DriftReading(None, how, "the first window's p95 is 0 or too few windows had requests")
    empty = len(lat.windows) - len(measured)
    doubt = f"{empty} window(s) without a request with an outcome" if empty else None
    return DriftReading(value, how, doubt=doubt)


def drift_reading(m: DriftMeasurement, metric: str, op: str, target: float) -> DriftReading:
    """What a drift SLA (``metric`` one of ``DRIFT_METRICS``) reads from the measurement: the steepest
    harness memory slope (MB/min), or the p95's drift (ms per 10 min, or last/first ratio). A soak too
    short to judge has no value (INCONCLUSIVE); a memory slope whose error band reaches the target, or a
    process not sampled through the soak, is a doubt."""
    if metric == MEMORY_SLOPE_METRIC:
        return _memory_reading(m, op, target)
    if metric in (P95_SLOPE_METRIC, P95_RATIO_METRIC):
        return _latency_reading(m, metric)
    raise ValueError(f"{metric!r} is not a drift metric: use one of {', '.join(DRIFT_METRICS)}")
