"""A capacity search's page (``bench.html`` beside its ``bench.json``), and the comparison of two
searches' knees (``drill report compare`` of two bench run directories)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from drillbit import __version__
from drillbit.core.errors import ConfigError
from drillbit.core.safeio import write_text
from drillbit.reports.charts import curve_svg
from drillbit.reports.html import CSP, environment

__all__ = ["BENCH_HTML", "KneeComparison", "compare_knees", "load_bench", "render_bench", "write_bench_report"]

BENCH_HTML = "bench.html"
_BENCH = "bench.json"  # drillbit.bench.BENCH (the reports layer sits below it)


def load_bench(run_dir: Path) -> dict[str, Any]:
    """A capacity search's bench.json; ConfigError naming the file when it is missing or not one."""
    path = run_dir / _BENCH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no bench.json: pass a run directory `drill bench` wrote") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), f"not JSON ({err}): pass a run directory `drill bench` wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ConfigError(str(path), "not a capacity search's result (no steps)")
    return data


def render_bench(b: dict[str, Any], *, warmup: float, stable_ratio: float) -> str:
    steps = [s for s in b["steps"] if s.get("figures")]
    p95_target = next((s["target"] for s in b.get("slas", {}).values()
                       if s.get("metric") == "p95_ms" and not s.get("request")), None)  # fmt: skip
    names = sorted({n for s in steps for n in s["figures"]})
    curves = [(f"p95 {n}", [s["achieved_rps"] for s in steps], [s["figures"].get(n, {}).get("p95_ms") for s in steps])
              for n in names]  # fmt: skip
    chart = curve_svg("Latency against throughput (p95 per step)", "requests/s sent", "p95 (ms)", curves,
                      "bench-curve", target=p95_target, knee=b.get("knee_rps"))  # fmt: skip
    ctx = {"csp": Markup(CSP), "b": b, "chart": Markup(chart) if chart else None, "warmup": warmup,
           "stable_ratio": stable_ratio, "drillbit_version": __version__,
           "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}  # fmt: skip
    html: str = environment().get_template("bench.html.j2").render(**ctx)
    return html


def write_bench_report(run_dir: Path, b: dict[str, Any], *, warmup: float, stable_ratio: float) -> Path:
    return write_text(run_dir / BENCH_HTML, render_bench(b, warmup=warmup, stable_ratio=stable_ratio))


@dataclass
class KneeComparison:
    baseline_rps: float | None
    candidate_rps: float | None
    change_percent: float | None
    max_regression_percent: float
    regressed: bool
    reasons: list[str] = field(default_factory=list)
    by_request: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def text(self) -> str:
        def rps(v: float | None) -> str:
            return "none" if v is None else f"{v:g} req/s"

        lines = [f"knee: {rps(self.baseline_rps)} -> {rps(self.candidate_rps)}"
                 + ("" if self.change_percent is None else f" ({self.change_percent:+.1f} %)")]  # fmt: skip
        lines += [f"  {n}: {rps(a)} -> {rps(b)}" for n, (a, b) in self.by_request.items()]
        lines.append(f"verdict: {'REGRESSION' if self.regressed else 'ok'} (limit: the knee lower by more than "
                     f"{self.max_regression_percent:g} %)")  # fmt: skip
        lines += [f"  {r}" for r in self.reasons]
        return "\n".join(lines)


def compare_knees(baseline: dict[str, Any], candidate: dict[str, Any],
                  max_regression_pct: float = 10.0) -> KneeComparison:  # fmt: skip
    """The candidate's knee against the baseline's: a regression when it is lower by more than the limit
    (or when the baseline had one and the candidate has none); each request name's knee alike."""
    if not 0 < max_regression_pct < 100 or not math.isfinite(max_regression_pct):
        raise ConfigError("--max-knee-regression", "give a percent within (0, 100)")
    a, b = baseline.get("knee_rps"), candidate.get("knee_rps")
    regressions: list[str] = []

    def worse(name: str, old: float | None, new: float | None) -> None:
        if old is None:
            return
        if new is None:
            regressions.append(f"{name}: {old:g} req/s before, none now (not even the first step held)")
        elif (old - new) / old * 100 > max_regression_pct:
            regressions.append(f"{name}: {old:g} -> {new:g} req/s ({(new - old) / old * 100:+.1f} %)")

    worse("knee", a, b)
    base_names, cand_names = baseline.get("knees_by_request") or {}, candidate.get("knees_by_request") or {}
    by_request = {n: (base_names.get(n), cand_names.get(n)) for n in sorted({*base_names, *cand_names})}
    for name, (old, new) in by_request.items():
        worse(name, old, new)
    notes = (["the candidate's search stopped at a saturated generator: its knee is a floor"]
             if candidate.get("stopped_because") == "saturated" else [])  # fmt: skip
    change = (b - a) / a * 100 if a and b is not None else None
    return KneeComparison(a, b, change, max_regression_pct, bool(regressions), regressions + notes, by_request)
