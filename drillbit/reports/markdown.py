"""summary.md: the drill's outcome for a CI job summary (GitHub ``$GITHUB_STEP_SUMMARY`` and the like)."""

from __future__ import annotations

import math
import re

from drillbit.core.measurements import RtoOutage
from drillbit.reports.junit import verdict_message
from drillbit.reports.summary import Summary

__all__ = ["md_code", "md_escape", "render_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~])")


def md_escape(text: object) -> str:
    """Inert in a Markdown table cell: markup characters escaped, HTML brackets as entities, one line."""
    s = _MD_SPECIAL.sub(r"\\\1", str(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(s.split())


def md_code(text: object) -> str:
    """A code span (backslash escapes do not work inside one: backticks are replaced instead)."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def _n(x: float | int | None, unit: str = "", digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f} {unit}".strip() if isinstance(x, float) else f"{x} {unit}".strip()


def _outages(outages: list[RtoOutage]) -> str:
    """``2: 0.4 to 2.9 s (2.5 s); 8.1 to 9.0 s (0.9 s)`` (from the fault), or ``none``."""
    if not outages:
        return "none"
    spans = "; ".join(f"{o.start_s:.1f} to {o.end_s:.1f} s ({o.length_s:.1f} s)" for o in outages)
    return f"{len(outages)}: {spans}"


def render_markdown(summary: Summary) -> str:
    run = summary.run
    outcome = summary.outcome.value if summary.outcome is not None else "NO VERDICT"
    title = run.experiment.title or run.experiment.path or run.id
    lines = [f"## drillbit: {md_escape(title)} — **{outcome}**", ""]
    target = run.target.get("name", "?")
    status = md_escape(run.status or "unknown")
    lines.append(f"Drill {md_code(run.id)} · target {md_escape(target)} · status {status}"
                 f" · mode {md_escape(run.mode or '?')}"
                 + (f" · exit code {summary.exit_code}" if summary.exit_code is not None else ""))  # fmt: skip
    if run.started_at_utc:
        ended = f", ended {run.ended_at_utc}" if run.ended_at_utc else ""
        lines.append(f"Started {run.started_at_utc}{ended} (UTC)")
    if run.mode == "observe":
        lines += ["", "> drillbit observed this run and did not inject any fault."]
    lines.append("")
    if summary.verdicts:
        lines += ["| Requirement | SLA | Target | Measured | Verdict |", "|---|---|---|---|---|"]
        for v in summary.verdicts:
            measured = "not measured" if v.measured is None else f"{v.measured:g} {v.unit}"
            lines.append(f"| {md_escape(v.requirement)} {md_escape(v.requirement_text)} | {md_escape(v.sla)} | "
                         f"{md_escape(f'{v.op} {v.target:g} {v.unit}')} | {md_escape(measured)} | "
                         f"**{v.verdict.value}** |")  # fmt: skip
        problems = [v for v in summary.verdicts if v.verdict.value != "PASS"]
        if problems:
            lines.append("")
            lines += [f"- **{v.verdict.value}** {md_escape(v.requirement)}: {md_escape(verdict_message(v))}"
                      for v in problems]  # fmt: skip
    else:
        lines.append("**No verdicts**: the drill did not evaluate its SLAs (see the run status). "
                     "Nothing here is a PASS.")
    for reason in summary.inconclusive_reasons:
        lines.append(f"- inconclusive: {md_escape(reason)}")
    m = summary.measurements
    lines += ["", "| Measurement | Value |", "|---|---|"]
    rto = "not measured" if m.rto_s is None else f"{m.rto_s:.3f} s ± {m.rto_error_bound_s or 0:.3f} s"
    if m.rto_recovered is False:
        rto = "not recovered within the samples"
    rows = [("RTO", rto), ("Time to detect", _n(m.detect_s, "s")), ("Downtime", _n(m.downtime_s, "s")),
            ("Outages after the fault", _outages(m.outages)),
            ("RPO: lost writes", _n(m.rpo_lost)), ("RPO window", _n(m.rpo_window_s, "s")),
            ("RPO: indeterminate", _n(m.rpo_indeterminate)), ("Availability", _n(
                m.availability_ratio * 100 if m.availability_ratio is not None else None, "%")),
            ("Load: intended / achieved", f"{_n(m.load_intended_rps, '/s', 1)} / {_n(m.load_achieved_rps, '/s', 1)}"),
            ("Generator saturated", {None: "—", True: "yes", False: "no"}[m.load_saturated])]  # fmt: skip
    all_ = m.latency.get("all")
    if all_ is not None:
        rows.append(("Latency p50/p95/p99 (corrected)",
                     f"{_n(all_.p50_ms, '', 1)} / {_n(all_.p95_ms, '', 1)} / {_n(all_.p99_ms, 'ms', 1)}"))  # fmt: skip
    lines += [f"| {k} | {md_escape(v)} |" for k, v in rows]
    if summary.missing:
        lines += ["", f"Missing from the run directory: {md_escape(', '.join(summary.missing))}"]
    if summary.problems:
        lines += ["", "Unreadable: " + md_escape("; ".join(summary.problems))]
    lines += ["", "Full report: `report.html` in the run directory."]
    return "\n".join(lines) + "\n"
