"""``drill report compare BASELINE CANDIDATE``: two drills side by side, with a latency regression verdict.

Per phase present in both runs, the candidate's corrected p95 is compared with the baseline's:
worse by more than ``max_p95_regression_pct`` percent is a regression. The verdict is

- ``REGRESSION`` (exit 1): at least one phase regressed;
- ``OK`` (exit 0): every compared phase within the limit;
- ``INCONCLUSIVE`` (exit 3): nothing to compare (no phase with a p95 in both), or either load
  generator was saturated (its latency is the generator's, not the server's).

Runs of different experiments are refused (a usage error, exit 2) unless ``allow_different``;
the limit must be a finite number >= 0 (NaN would silently pass every regression).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from markupsafe import Markup

from drillbit import __version__
from drillbit.core.errors import ConfigError
from drillbit.core.redact import Redactor
from drillbit.core.safeio import check_output_path, write_text
from drillbit.reports.charts import bar_chart_svg
from drillbit.reports.html import CSP, environment
from drillbit.reports.runs import load_summary
from drillbit.reports.summary import Summary

__all__ = ["Comparison", "PhaseDelta", "check_limit", "compare", "compare_summaries", "experiment_of", "format_text",
           "render_comparison"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseDelta:
    phase: str
    metric: str  # p50_ms | p95_ms | p99_ms | error_rate | throughput_rps
    baseline: float | None
    candidate: float | None
    change_pct: float | None  # (candidate - baseline) / baseline * 100
    judged: bool  # this row decides the verdict (p95)
    regressed: bool


@dataclass(frozen=True)
class Comparison:
    baseline: Summary
    candidate: Summary
    max_p95_regression_pct: float
    verdict: str  # OK | REGRESSION | INCONCLUSIVE
    rows: list[PhaseDelta]
    reasons: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"OK": 0, "REGRESSION": 1, "INCONCLUSIVE": 3}[self.verdict]


def _change(base: float | None, cand: float | None) -> float | None:
    if base is None or cand is None or not (math.isfinite(base) and math.isfinite(cand)) or base == 0:
        return None
    return (cand - base) / base * 100.0


def experiment_of(s: Summary) -> str:
    """What a run exercised: its experiment file's stem, else its title, else the run name (observe)."""
    if s.run.experiment.path:
        return PurePosixPath(s.run.experiment.path).stem
    if s.run.experiment.title:
        return s.run.experiment.title
    return re.sub(r"^\d{8}T\d{6}Z-", "", s.run.id).split(".")[0]


def check_limit(max_p95_regression_pct: float) -> float:
    """The regression limit, refused unless a finite number >= 0."""
    if not math.isfinite(max_p95_regression_pct) or max_p95_regression_pct < 0:
        raise ConfigError("--max-p95-regression-pct", f"{max_p95_regression_pct!r} is not a finite number >= 0: "
                                                      "give a percent such as 10")  # fmt: skip
    return max_p95_regression_pct


def compare_summaries(baseline: Summary, candidate: Summary, max_p95_regression_pct: float = 10.0, *,
                      allow_different: bool = False) -> Comparison:  # fmt: skip
    check_limit(max_p95_regression_pct)
    if not allow_different and experiment_of(baseline) != experiment_of(candidate):
        raise ConfigError("drill report compare", f"the baseline ran {experiment_of(baseline)!r}, the candidate "
                                                  f"{experiment_of(candidate)!r}: compare runs of one experiment, "
                                                  "or pass --allow-different")  # fmt: skip
    b_lat, c_lat = baseline.measurements.latency, candidate.measurements.latency
    phases = [p for p in b_lat if p in c_lat]
    rows: list[PhaseDelta] = []
    regressions, judged = [], 0
    for phase in phases:
        b, c = b_lat[phase], c_lat[phase]
        for metric in ("p50_ms", "p95_ms", "p99_ms", "error_rate", "throughput_rps"):
            bv, cv = getattr(b, metric), getattr(c, metric)
            pct = _change(bv, cv)
            is_judged = metric == "p95_ms" and pct is not None
            regressed = is_judged and pct is not None and pct > max_p95_regression_pct
            judged += is_judged
            if regressed:
                limit = max_p95_regression_pct
                regressions.append(f"{phase}: p95 {bv:.2f} ms -> {cv:.2f} ms (+{pct:.1f} % > {limit:g} %)")
            rows.append(PhaseDelta(phase, metric, bv, cv, pct, is_judged, regressed))
    reasons = list(regressions)
    runs = (("baseline", baseline), ("candidate", candidate))
    saturated = [name for name, s in runs if s.measurements.load_saturated]
    if regressions:
        verdict = "REGRESSION"
    elif saturated:
        verdict = "INCONCLUSIVE"
        reasons.append(f"load generator saturated in the {' and '.join(saturated)} run: latency is the generator's")
    elif judged == 0:
        verdict = "INCONCLUSIVE"
        reasons.append("no phase has a p95 in both runs: nothing to compare")
    else:
        verdict = "OK"
    return Comparison(baseline, candidate, max_p95_regression_pct, verdict, rows, reasons)


def render_comparison(cmp: Comparison) -> str:
    p95 = [r for r in cmp.rows if r.metric == "p95_ms"]
    chart = bar_chart_svg("p95 latency per phase (corrected)", "p95 (ms)", [r.phase for r in p95],
                          {f"baseline {cmp.baseline.run.id}": [r.baseline for r in p95],
                           f"candidate {cmp.candidate.run.id}": [r.candidate for r in p95]}, "compare-p95")  # fmt: skip
    ctx = {"csp": Markup(CSP), "cmp": cmp, "b": cmp.baseline, "c": cmp.candidate,
           "chart": Markup(chart) if chart else None, "drillbit_version": __version__,
           "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}  # fmt: skip
    html: str = environment().get_template("compare.html.j2").render(**ctx)
    return html


def format_text(cmp: Comparison) -> str:
    """The comparison as a plain-text table (for the terminal and CI logs)."""
    lines = [f"baseline  {cmp.baseline.run.id}", f"candidate {cmp.candidate.run.id}", "",
             f"{'phase':<12} {'metric':<15} {'baseline':>12} {'candidate':>12} {'change':>9}"]  # fmt: skip
    for r in cmp.rows:
        b = "-" if r.baseline is None else f"{r.baseline:.3f}"
        c = "-" if r.candidate is None else f"{r.candidate:.3f}"
        pct = "-" if r.change_pct is None else f"{r.change_pct:+.1f}%"
        flag = "  REGRESSION" if r.regressed else ""
        lines.append(f"{r.phase[:12]:<12} {r.metric:<15} {b:>12} {c:>12} {pct:>9}{flag}")
    lines += ["", f"verdict: {cmp.verdict} (limit: p95 worse by more than {cmp.max_p95_regression_pct:g} %)"]
    lines += [f"  {r}" for r in cmp.reasons]
    return "\n".join(lines)


def compare(baseline: Path, candidate: Path, *, max_p95_regression_pct: float = 10.0, out: Path | None = None,
            redactor: Redactor | None = None, allow_different: bool = False) -> Comparison:  # fmt: skip
    check_limit(max_p95_regression_pct)
    if out is not None:
        check_output_path(out)  # before reading anything: a bad --out is said at once
    cmp = compare_summaries(load_summary(baseline, redactor), load_summary(candidate, redactor),
                            max_p95_regression_pct, allow_different=allow_different)  # fmt: skip
    if out is not None:
        write_text(out, render_comparison(cmp))
    return cmp
