"""The report's soak section: each harness process's resident memory over the run, the latency per window,
and their slopes (``drillbit.probes.drift``).

The figures are measurements.json's ``drift`` section when the analysis wrote one; otherwise the report
analyzes them here from the run directory's harness samples and request records (a report renders from
the run directory alone). The memory chart draws the harness samples themselves, a line per process.
Every label is redacted (a hostname is run data like any other). Nothing here raises on odd data: a
section that cannot be worked out says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from drillbit.core.measurements import DriftMeasurement
from drillbit.core.rundir import HARNESS, HARNESS_REMOTE, read_harness
from drillbit.probes.drift import MB, RssSeries, analyze_drift, fit_line, rss_series
from drillbit.reports import charts
from drillbit.reports.rundata import RunData

__all__ = ["DriftView", "drift_view"]

log = logging.getLogger(__name__)

#: at most this many points per process on the memory chart (an hour at 1 Hz is 3,600)
MAX_POINTS = 600
_READ_ERRORS = (FileNotFoundError, ValueError, OSError, pa.ArrowInvalid, KeyError)


@dataclass(frozen=True)
class DriftView:
    """What the template shows: the measurement (or why there is none) and the two charts."""

    m: DriftMeasurement | None
    source: str  # where the figures come from, in words
    problem: str | None = None
    memory_svg: str | None = None
    latency_svg: str | None = None


def _redacted(data: RunData, m: DriftMeasurement) -> DriftMeasurement:
    procs = [p.model_copy(update={"name": data.text(p.name), "host": data.text(p.host)}) for p in m.processes]
    worst = data.text(m.worst_process) if m.worst_process is not None else None
    return m.model_copy(update={"processes": procs, "worst_process": worst})


def _memory_svg(data: RunData, m: DriftMeasurement, series: list[RssSeries]) -> str | None:
    import matplotlib as mpl  # imported where a chart is drawn (see drillbit.reports.charts)

    if not series or m.start is None:
        return None
    slopes = {(p.host, p.pid, p.remote): p.slope_mb_per_min for p in m.processes}
    with mpl.rc_context(charts.RC):
        fig = charts.new_figure(9.0, 3.0)
        ax = fig.subplots()
        ax.axvspan(0, m.warmup_s / 60, color=charts.PHASE_SHADES[0], label="warm-up (left out)")
        for i, s in enumerate(series):
            step = max(1, len(s.t) // MAX_POINTS)
            slope = slopes.get((s.host, s.pid, s.remote))
            label = data.text(s.name) + ("" if slope is None else f": {slope:+.3f} MB/min")
            ax.plot((s.t[::step] - m.start) / 60, s.rss_bytes[::step] / MB, lw=1.0,
                    color=charts.PALETTE[i % len(charts.PALETTE)], label=label[:70])  # fmt: skip
        ax.set_xlabel("minutes since the soak began")
        ax.set_ylabel("resident memory (MB)")
        ax.set_title("Resident memory per harness process", loc="left")
        ax.grid(True, lw=0.3, color="#cccccc")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False)
        return charts.to_svg(fig, "drift-memory")


def _latency_svg(m: DriftMeasurement) -> str | None:
    import matplotlib as mpl

    lat = m.latency
    if lat is None or m.start is None:
        return None
    windows = [w for w in lat.windows if w.p95_ms is not None]
    if not windows:
        return None
    mid = np.array([(w.start + w.end) / 2 for w in windows])
    x = (mid - m.start) / 60
    p95 = np.array([w.p95_ms for w in windows], dtype=float)
    with mpl.rc_context(charts.RC):
        fig = charts.new_figure(9.0, 2.6)
        ax = fig.subplots()
        ax.plot(x, p95, marker="o", ms=3, lw=1, color=charts.PALETTE[0], label="p95 per window")
        p50 = np.array([np.nan if w.p50_ms is None else w.p50_ms for w in windows], dtype=float)
        ax.plot(x, p50, marker="o", ms=2, lw=0.8, color=charts.PALETTE[2],
                label="p50 per window")  # fmt: skip
        if len(windows) > 1:
            fit = fit_line(mid, p95)
            ax.plot(x, fit.mean_y + fit.slope * (mid - mid.mean()), lw=0.8, ls="--", color=charts.FAULT_COLOR,
                    label=f"p95 trend {fit.slope * 600:+.2f} ms per 10 min")  # fmt: skip
        ax.set_xlabel("minutes since the soak began")
        ax.set_ylabel("ms (corrected)")
        ax.set_title(f"Latency per {lat.window_s:.0f} s window", loc="left")
        ax.grid(True, lw=0.3, color="#cccccc")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False)
        return charts.to_svg(fig, "drift-latency")


def drift_view(data: RunData) -> DriftView | None:
    """The soak section, or None when the run has no harness samples (no load ran)."""
    if not (data.has_samples(HARNESS) or data.has_samples(HARNESS_REMOTE)):
        return None
    stored = getattr(data.measurements, "drift", None)  # the analysis's section, where it writes one
    source = "measurements.json"
    try:
        series = rss_series(read_harness(data.run_dir))
        if not isinstance(stored, DriftMeasurement):
            stored, source = analyze_drift(data.run_dir), "worked out by the report from the run directory"
    except _READ_ERRORS as err:
        log.warning("soak drift not shown: %s", err)
        return DriftView(None, source, problem=data.text(f"{type(err).__name__}: {err}"))
    m = _redacted(data, stored)
    try:
        memory, latency = _memory_svg(data, m, series), _latency_svg(m)
    except (ValueError, TypeError, OverflowError) as err:  # odd data: say so, keep the figures
        log.warning("soak drift charts not drawn: %s", err)
        return DriftView(m, source, problem=data.text(f"charts could not be drawn: {err}"))
    return DriftView(m, source, memory_svg=memory, latency_svg=latency)
