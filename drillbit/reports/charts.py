"""Charts as inline SVG (matplotlib's object API: no pyplot, no global figure state).

Text is drawn as paths (``svg.fonttype: path``), so no font is fetched; comments are removed and
every element id is prefixed per chart, so several charts can share one HTML document. Labels
come from already-redacted run data.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from drillbit.reports.timeline import RequestSeries

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# matplotlib (about 0.8 s to import) is imported where a chart is drawn, so `drill` starts fast

__all__ = [
    "RC", "Series", "TimelineInput", "bar_chart_svg", "curve_svg", "inline_svg", "new_figure", "timeline_svg",
    "to_svg", "trend_svg",
]  # fmt: skip

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
PHASE_SHADES = ("#f2f2f2", "#e4e4e4")
FAULT_COLOR, REVERT_COLOR, RTO_COLOR, MARK_COLOR = "#D55E00", "#009E73", "#CC79A7", "#555555"
OUTAGE_COLOR = "#E69F00"  # every outage after the fault, on the timeline
RC: dict[Any, Any] = {"svg.fonttype": "path", "font.size": 8.0, "axes.titlesize": 9.0, "axes.titleweight": "bold",
       "axes.spines.top": False, "axes.spines.right": False, "svg.image_inline": True}  # fmt: skip
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def inline_svg(raw: str, prefix: str) -> str:
    """matplotlib's SVG document -> an ``<svg>`` element fit for inlining (no prolog, comments or shared ids)."""
    start = raw.find("<svg")
    svg = re.sub(r"<!--.*?-->", "", raw[start:], flags=re.S)
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    if re.search(r"<\s*(script|foreignObject|iframe)|\bon[a-z]+\s*=|javascript:", svg, re.I):
        raise ValueError("chart SVG holds active content")  # cannot happen with text drawn as paths
    return svg.replace("<svg ", '<svg role="img" class="chart" ', 1)


def to_svg(fig: Figure, prefix: str) -> str:
    buf = io.StringIO()
    import matplotlib as mpl

    with mpl.rc_context({**RC, "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return inline_svg(buf.getvalue(), prefix)


def new_figure(width: float, height: float) -> Figure:
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


@dataclass(frozen=True)
class TimelineInput:
    origin: float  # x = seconds since this epoch instant
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)
    faults: list[tuple[float, float | None, str]] = field(default_factory=list)  # inject, revert, label
    marks: list[tuple[float, str]] = field(default_factory=list)
    rto: tuple[float, float | None, str] | None = None  # fault_at, recovered_at (None: not recovered), label
    outages: list[tuple[float, float]] = field(default_factory=list)  # every outage after the fault (start, end)
    requests: RequestSeries | None = None
    availability: pd.DataFrame | None = None  # t, ratio
    replicas: pd.DataFrame | None = None  # t, region, desired, ready
    replication_lag: pd.DataFrame | None = None  # t, member, lag_s
    lag_target_s: float | None = None  # the RPO line on the lag panel


def _x_range(inp: TimelineInput) -> tuple[float, float]:
    xs: list[float] = [inp.origin]
    if inp.requests is not None:
        xs += [float(inp.requests.t[0]), float(inp.requests.t[-1] + inp.requests.width)]
    for df in (inp.availability, inp.replicas):
        if df is not None and len(df):
            xs += [float(df["t"].min()), float(df["t"].max())]
    xs += [a for a, _, _ in inp.faults] + [b for _, b, _ in inp.faults if b is not None] + [t for t, _ in inp.marks]
    xs += [a for a, b in inp.phases.values()] + [b for _, b in inp.phases.values() if math.isfinite(b)]
    if inp.rto is not None and inp.rto[1] is not None:
        xs.append(inp.rto[1])
    lo, hi = min(xs), max(xs)
    return lo - inp.origin, max(hi, lo + 1.0) - inp.origin


def _decorate(ax: Axes, inp: TimelineInput, hi: float, *, labels: bool) -> None:
    for i, (name, (a, b)) in enumerate(sorted(inp.phases.items(), key=lambda kv: kv[1][0])):
        end = min(b, inp.origin + hi) if math.isfinite(b) else inp.origin + hi
        ax.axvspan(a - inp.origin, end - inp.origin, color=PHASE_SHADES[i % 2], zorder=0, lw=0)
        if labels:
            ax.text((a + end) / 2 - inp.origin, 1.02, name, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7, color="#333333")  # fmt: skip
    if inp.rto is not None:
        fault_at, recovered_at, label = inp.rto
        until = recovered_at if recovered_at is not None else inp.origin + hi
        ax.axvspan(fault_at - inp.origin, until - inp.origin, color=RTO_COLOR, alpha=0.18, zorder=0.5, lw=0,
                   label=label if labels else None)  # fmt: skip
    for j, (a, b) in enumerate(inp.outages):
        ax.axvspan(a - inp.origin, max(b, a + 0.05) - inp.origin, color=OUTAGE_COLOR, alpha=0.35, zorder=0.6, lw=0,
                   label="outage" if labels and j == 0 else None)  # fmt: skip
    for j, (a, reverted, _) in enumerate(inp.faults):
        first = labels and j == 0
        ax.axvline(a - inp.origin, color=FAULT_COLOR, lw=1.2, zorder=3, label="fault injected" if first else None)
        if reverted is not None:
            ax.axvline(reverted - inp.origin, color=REVERT_COLOR, lw=1.2, ls="--", zorder=3,
                       label="fault reverted" if first else None)  # fmt: skip
    for t, text in inp.marks:
        ax.axvline(t - inp.origin, color=MARK_COLOR, lw=0.8, ls=":", zorder=3)
        if labels:
            ax.text(t - inp.origin, 0.98, f" {text[:40]}", transform=ax.get_xaxis_transform(), rotation=90,
                    va="top", ha="left", fontsize=6, color=MARK_COLOR)  # fmt: skip


def timeline_svg(inp: TimelineInput, prefix: str = "timeline") -> str | None:
    """Stacked panels sharing the time axis: latency, throughput, error rate, availability, replicas,
    replication lag."""
    panels: list[str] = []
    r = inp.requests
    if r is not None:
        panels += ["latency", "throughput", "errors"]
    if inp.availability is not None and len(inp.availability):
        panels.append("availability")
    if inp.replicas is not None and len(inp.replicas):
        panels.append("replicas")
    if inp.replication_lag is not None and len(inp.replication_lag):
        panels.append("replication lag")
    if not panels:
        return None
    lo, hi = _x_range(inp)
    fig = new_figure(9.0, 1.0 + 1.7 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        _decorate(ax, inp, hi, labels=i == 0)
        if panel == "latency" and r is not None:
            x = r.t - inp.origin
            for col, name, color in ((r.p50_ms, "p50", PALETTE[0]), (r.p95_ms, "p95", PALETTE[1]),
                                     (r.p99_ms, "p99", PALETTE[3])):  # fmt: skip
                ax.plot(x, col, drawstyle="steps-post", color=color, lw=1, label=f"{name} (corrected)")
            ax.plot(x, r.uncorrected_p99_ms, drawstyle="steps-post", color=PALETTE[3], lw=0.8, ls=":",
                    label="p99 uncorrected")  # fmt: skip
            if np.isfinite(r.p99_ms).any():
                from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(ScalarFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("latency (ms)")
            ax.set_title(f"Latency per {r.width:g} s (from the intended send time)", loc="left", pad=14)
        elif panel == "throughput" and r is not None:
            x = r.t - inp.origin
            if r.intended_rps is not None:
                ax.plot(x, r.intended_rps, drawstyle="steps-post", color=MARK_COLOR, lw=0.8, ls="--", label="intended")
            ax.plot(x, r.sent_rps, drawstyle="steps-post", color=PALETTE[5], lw=0.8, label="sent")
            ax.plot(x, r.ok_rps, drawstyle="steps-post", color=PALETTE[2], lw=1, label="ok")
            ax.set_ylabel("requests/s")
            ax.set_title("Throughput", loc="left")
        elif panel == "errors" and r is not None:
            ax.plot(r.t - inp.origin, r.error_rate * 100, drawstyle="steps-post", color=PALETTE[3], lw=1,
                    label="error rate")  # fmt: skip
            ax.set_ylim(-2, 102)
            ax.set_ylabel("errors (%)")
            ax.set_title("Error rate", loc="left")
        elif panel == "availability" and inp.availability is not None:
            av = inp.availability
            ax.plot(av["t"] - inp.origin, av["ratio"] * 100, drawstyle="steps-post", color=PALETTE[0], lw=1,
                    label="probes ok")  # fmt: skip
            ax.set_ylim(-2, 102)
            ax.set_ylabel("probes ok (%)")
            ax.set_title("Availability probes", loc="left")
        elif panel == "replicas" and inp.replicas is not None:
            for j, (region, df) in enumerate(inp.replicas.groupby("region", sort=True)):
                color = PALETTE[j % len(PALETTE)]
                x = df["t"] - inp.origin
                ax.plot(x, df["ready"], drawstyle="steps-post", color=color, lw=1.2, label=f"{region} ready")
                ax.plot(x, df["desired"], drawstyle="steps-post", color=color, lw=0.8, ls="--",
                        label=f"{region} desired")  # fmt: skip
            ax.set_ylabel("replicas")
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_title("Replicas per region", loc="left")
        elif panel == "replication lag" and inp.replication_lag is not None:
            for j, (member, df) in enumerate(inp.replication_lag.groupby("member", sort=True)):
                ax.plot(df["t"] - inp.origin, df["lag_s"], color=PALETTE[j % len(PALETTE)], lw=1.2,
                        label=f"replica {member}")  # fmt: skip
            if inp.lag_target_s is not None:
                ax.axhline(inp.lag_target_s, color=FAULT_COLOR, lw=0.8, ls="--", label=f"RPO {inp.lag_target_s:g} s")
            ax.set_ylabel("lag (s)")
            ax.set_title("Replication lag (behind the primary)", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False)
        ax.grid(True, lw=0.3, color="#cccccc")
        ax.set_xlim(lo, hi)
    start = datetime.fromtimestamp(inp.origin, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    axes[-1].set_xlabel(f"seconds since {start}")
    return to_svg(fig, prefix)


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[float]  # epoch s
    y: Sequence[float | None]
    failed: Sequence[bool] = ()  # marks points whose drill did not pass


Curve = tuple[str, Sequence[float], Sequence[float | None]]  # label, x, y


def curve_svg(title: str, xlabel: str, ylabel: str, curves: Sequence[Curve], prefix: str, *,
              target: float | None = None, knee: float | None = None) -> str | None:  # fmt: skip
    """y against a numeric x, a line per curve (e.g. p95 against achieved throughput), with the target as a
    horizontal line and the knee as a vertical one."""
    if not any(len(x) for _, x, _ in curves):
        return None
    fig = new_figure(9.0, 3.0)
    ax = fig.subplots()
    for i, (label, x, y) in enumerate(curves):
        ax.plot(list(x), [math.nan if v is None else v for v in y], marker="o", ms=3, lw=1,
                color=PALETTE[i % len(PALETTE)], label=label[:50])  # fmt: skip
    if target is not None:
        ax.axhline(target, color=FAULT_COLOR, lw=0.8, ls="--", label=f"target {target:g}")
    if knee is not None:
        ax.axvline(knee, color=REVERT_COLOR, lw=1.0, ls=":", label=f"knee {knee:g}")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.grid(True, lw=0.3, color="#cccccc")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False)
    return to_svg(fig, prefix)


def trend_svg(title: str, ylabel: str, series: Sequence[Series], prefix: str) -> str | None:
    """One metric across drills: a line per experiment over calendar time; failed drills marked with x."""
    if not any(len(s.x) for s in series):
        return None
    fig = new_figure(9.0, 2.6)
    ax = fig.subplots()
    for i, s in enumerate(series):
        x = [datetime.fromtimestamp(v, UTC) for v in s.x]
        y = [math.nan if v is None else v for v in s.y]
        color = PALETTE[i % len(PALETTE)]
        ax.plot(x, y, marker="o", ms=3, lw=1, color=color, label=s.label[:50])  # type: ignore[arg-type]
        bad = [(a, b) for a, b, f in zip(x, y, s.failed, strict=False) if f]
        if bad:
            ax.plot([a for a, _ in bad], [b for _, b in bad], "x", ms=7, color=FAULT_COLOR)  # type: ignore[arg-type]
    ax.set_title(title, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(True, lw=0.3, color="#cccccc")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5, frameon=False)
    fig.autofmt_xdate()
    return to_svg(fig, prefix)


def bar_chart_svg(title: str, ylabel: str, groups: Sequence[str], bars: dict[str, Sequence[float | None]],
                  prefix: str) -> str | None:  # fmt: skip
    """Grouped bars (e.g. p95 per phase, baseline beside candidate)."""
    if not groups:
        return None
    fig = new_figure(9.0, 2.6)
    ax = fig.subplots()
    width = 0.8 / max(len(bars), 1)
    xs = np.arange(len(groups))
    for i, (label, values) in enumerate(bars.items()):
        ys = [math.nan if v is None else v for v in values]
        ax.bar(xs + i * width - 0.4 + width / 2, ys, width, label=label[:50], color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(xs, [g[:20] for g in groups])
    ax.set_title(title, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", lw=0.3, color="#cccccc")
    ax.legend(fontsize=6.5, frameon=False)
    return to_svg(fig, prefix)
