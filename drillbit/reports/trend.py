"""``drill report trend RUNS...``: RTO, RPO and p95 per experiment across drills, and pass/fail over time."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from markupsafe import Markup

from drillbit import __version__
from drillbit.core.redact import Redactor
from drillbit.core.safeio import check_output_path, write_text
from drillbit.reports.charts import Series, trend_svg
from drillbit.reports.html import CSP, environment
from drillbit.reports.runs import expand_runs, load_summary
from drillbit.reports.summary import Summary

__all__ = ["TrendRow", "render_trend", "trend", "trend_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrendRow:
    run_id: str
    experiment: str
    started_at: float | None
    outcome: str  # PASS | FAIL | INCONCLUSIVE | NO VERDICT
    status: str
    rto_s: float | None
    rpo_lost: int | None
    rpo_window_s: float | None
    p95_ms: float | None
    target: str


def _row(s: Summary) -> TrendRow:
    all_ = s.measurements.latency.get("all")
    return TrendRow(
        run_id=s.run.id, experiment=s.run.experiment.path or s.run.experiment.title or "(unknown experiment)",
        started_at=s.run.started_at, outcome=s.outcome.value if s.outcome is not None else "NO VERDICT",
        status=s.run.status or "unknown", rto_s=s.measurements.rto_s, rpo_lost=s.measurements.rpo_lost,
        rpo_window_s=s.measurements.rpo_window_s, p95_ms=all_.p95_ms if all_ is not None else None,
        target=str(s.run.target.get("name", "")),
    )  # fmt: skip


def trend_rows(summaries: list[Summary]) -> list[TrendRow]:
    """One row per drill, oldest first."""
    return sorted((_row(s) for s in summaries), key=lambda r: (r.started_at or 0.0, r.run_id))


def _series(rows: list[TrendRow], attr: str) -> list[Series]:
    by_exp: dict[str, list[TrendRow]] = defaultdict(list)
    for r in rows:
        if r.started_at is not None:
            by_exp[r.experiment].append(r)
    return [Series(label=exp, x=[r.started_at for r in rs if r.started_at is not None],
                   y=[getattr(r, attr) for r in rs], failed=[r.outcome != "PASS" for r in rs])
            for exp, rs in sorted(by_exp.items())]  # fmt: skip


def render_trend(rows: list[TrendRow]) -> str:
    charts = [
        trend_svg("RTO per drill (s)", "RTO (s)", _series(rows, "rto_s"), "trend-rto"),
        trend_svg("RPO: acknowledged writes lost per drill", "lost writes", _series(rows, "rpo_lost"), "trend-rpo"),
        trend_svg("p95 latency per drill (corrected, whole run)", "p95 (ms)", _series(rows, "p95_ms"), "trend-p95"),
    ]
    counts = {k: sum(r.outcome == k for r in rows) for k in ("PASS", "FAIL", "INCONCLUSIVE", "NO VERDICT")}
    ctx = {"csp": Markup(CSP), "rows": rows, "charts": [Markup(c) for c in charts if c is not None], "counts": counts,
           "experiments": sorted({r.experiment for r in rows}), "drillbit_version": __version__,
           "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}  # fmt: skip
    html: str = environment().get_template("trend.html.j2").render(**ctx)
    return html


def trend(runs: list[Path], out: Path, *, redactor: Redactor | None = None) -> Path:
    """Write the trend page for ``runs`` (run directories, or directories of them) to ``out``."""
    check_output_path(out)  # before reading anything: a bad --out is said at once
    summaries = [load_summary(d, redactor) for d in expand_runs(runs)]
    html = render_trend(trend_rows(summaries))
    write_text(out, html)
    log.info("trend over %d drills: %s", len(summaries), out)
    return out
