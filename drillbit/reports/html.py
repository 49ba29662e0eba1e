"""report.html: one self-contained page (Jinja2, autoescape on; no script; a strict CSP; SVG charts inline).

Nothing is fetched: no script, font, image or stylesheet by URL, and the page's Content-Security-
Policy forbids it (``default-src 'none'``), so even a payload that slipped through escaping could
neither run nor call out. The summary is embedded as a JSON data block with ``<``, ``>`` and ``&``
written as ``\\u003c``-style escapes, so a ``</script>`` inside any value stays inert.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, FileSystemLoader, PackageLoader
from markupsafe import Markup

from drillbit import __version__
from drillbit.core.project import current as current_project
from drillbit.reports import charts
from drillbit.reports.analysis import Analysis, fault_spans, marks, phases
from drillbit.reports.driftview import drift_view
from drillbit.reports.rundata import RunData
from drillbit.reports.summary import Summary

__all__ = ["CSP", "environment", "journal_view", "json_for_html", "render_report"]

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-src 'none'; object-src 'none'; script-src 'none'")  # fmt: skip
_DETAIL_MAX = 600
_EVENTS_MAX = 400


def json_for_html(obj: Any) -> str:
    """JSON safe inside an HTML ``<script type="application/json">`` block (no ``<``, ``>``, ``&`` raw)."""
    text = json.dumps(obj, indent=1, sort_keys=True, default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _utc(t: Any) -> str:
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _num(x: Any, digits: int = 3, unit: str = "") -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—"
    if not math.isfinite(x):
        return "∞" if x > 0 else "—"
    text = f"{x:,.{digits}f}" if isinstance(x, float) else f"{x:,}"
    return f"{text} {unit}".strip()


def _g(x: Any) -> str:
    """A number as short as it can be said (15, 0.25, 1e+06)."""
    return f"{x:g}" if isinstance(x, int | float) and not isinstance(x, bool) else _num(x)


def _count(x: Any) -> str:
    return str(len(x)) if isinstance(x, list | tuple | dict) else "—"


def _mapping(x: Any) -> Mapping[str, Any]:
    """``x`` if it is a mapping, else an empty one (a section of the wrong shape renders empty, never raises)."""
    return x if isinstance(x, Mapping) else {}


def _ms(seconds: Any) -> str:
    """Seconds shown in milliseconds."""
    ok = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    return _num(float(seconds) * 1000, 0, "ms") if ok else "—"


def _pct(x: Any, digits: int = 2) -> str:
    return "—" if not isinstance(x, int | float) or isinstance(x, bool) else f"{x * 100:.{digits}f} %"


def _short(value: Any, limit: int = _DETAIL_MAX) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def environment() -> Environment:
    # a project's reports/templates/ overrides a shipped template of the same name
    loader = ChoiceLoader([FileSystemLoader(current_project().root / "reports" / "templates"),
                           PackageLoader("drillbit.reports", "templates")])  # fmt: skip
    env = Environment(loader=loader, autoescape=True, undefined=ChainableUndefined, trim_blocks=True,
                      lstrip_blocks=True)  # fmt: skip
    env.filters.update(utc=_utc, num=_num, pct=_pct, short=_short, ms=_ms, g=_g, count=_count, mapping=_mapping)
    return env


def _provider(activity: Mapping[str, Any]) -> str:
    p = activity.get("provider") or {}
    if not isinstance(p, Mapping):
        return ""
    kind = p.get("type", "")
    if kind == "python":
        return f"{p.get('module', '')}.{p.get('func', '')}"
    if kind == "http":
        return str(p.get("url", ""))
    if kind == "process":
        return str(p.get("path", ""))
    return str(kind)


def _run_entries(entries: Any) -> list[dict[str, Any]]:
    out = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, Mapping):
            continue
        act = e.get("activity")
        act = act if isinstance(act, Mapping) else {}
        exc = e.get("exception")
        detail = ""
        if exc:
            detail = (exc[-1] if isinstance(exc, list) and exc else str(exc)).strip()
        elif "output" in e:
            detail = _short(e.get("output"))
        out.append({"name": act.get("name", "?"), "type": act.get("type", "?"), "provider": _provider(act),
                    "start": e.get("start"), "end": e.get("end"), "duration": e.get("duration"),
                    "status": e.get("status", "?"), "detail": _short(detail),
                    "tolerance_met": e.get("tolerance_met")})  # fmt: skip
    return out


def _steady(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, Mapping):
        return None
    return {"met": block.get("steady_state_met"), "probes": _run_entries(block.get("probes"))}


def journal_view(journal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Chaos Toolkit journal as the report shows it: hypothesis before/after, each activity and rollback."""
    if not journal:
        return None
    ss = journal.get("steady_states")
    ss = ss if isinstance(ss, Mapping) else {}
    experiment = journal.get("experiment")
    experiment = experiment if isinstance(experiment, Mapping) else {}
    return {
        "title": experiment.get("title"), "status": journal.get("status"), "deviated": journal.get("deviated"),
        "start": journal.get("start"), "end": journal.get("end"), "duration": journal.get("duration"),
        "before": _steady(ss.get("before")), "after": _steady(ss.get("after")),
        "run": _run_entries(journal.get("run")), "rollbacks": _run_entries(journal.get("rollbacks")),
        "chaoslib": journal.get("chaoslib-version"),
    }  # fmt: skip


def _events_view(data: RunData, origin: float | None) -> list[dict[str, Any]]:
    rows = []
    for e in sorted(data.events, key=lambda e: float(e["t"]))[:_EVENTS_MAX]:
        rest = {k: v for k, v in e.items() if k not in ("t", "at", "kind")}
        t = float(e["t"])
        rows.append({"t": t, "offset": t - origin if origin is not None else None, "kind": e.get("kind", "?"),
                     "detail": _short(rest, 300) if rest else ""})  # fmt: skip
    return rows


def _timeline(data: RunData, analysis: Analysis) -> str | None:
    origin_candidates = [data.run.started_at] if data.run is not None else []
    if analysis.requests is not None:
        origin_candidates.append(float(analysis.requests.t[0]))
    if analysis.availability is not None and len(analysis.availability):
        origin_candidates.append(float(analysis.availability["t"].min()))
    if not origin_candidates:
        return None
    rto = data.measurements.rto if data.measurements is not None else None
    lag = data.measurements.replication_lag if data.measurements is not None else None
    rto_span = None
    if rto is not None and _is_number(rto.fault_at):
        if _is_number(rto.rto_s):
            bound = rto.error_bound_s
            label = f"RTO {rto.rto_s:.2f} s" + (f" ± {bound:.2f} s" if _is_number(bound) else "")
        else:
            label = "not recovered within the samples"
        rto_span = (rto.fault_at, rto.recovered_at if _is_number(rto.recovered_at) else None, label)
    inp = charts.TimelineInput(
        origin=min(origin_candidates), phases=phases(data), faults=fault_spans(data), marks=marks(data),
        rto=rto_span, requests=analysis.requests, availability=analysis.availability, replicas=analysis.replicas,
        replication_lag=analysis.replication_lag, lag_target_s=lag.target_s if lag is not None else None,
        outages=[(o.start, o.end) for o in (rto.outages if rto is not None else [])
                 if _is_number(o.start) and _is_number(o.end)],
    )  # fmt: skip
    try:
        return charts.timeline_svg(inp, prefix="timeline")
    except (ValueError, TypeError, OverflowError) as err:  # odd data: say so, keep the rest of the report
        log.warning("timeline not drawn: %s", err)
        analysis.notes.append(f"timeline: could not be drawn ({data.text(err)})")
        return None


def render_report(data: RunData, summary: Summary, analysis: Analysis) -> str:
    """The whole page; every value in it comes from redacted run data."""
    # templates (a project may override them) see plain mappings, as read from measurements.json
    m = data.measurements.model_dump() if data.measurements is not None else None
    records = {k: v.model_dump() for k, v in analysis.latency.items()} if analysis.latency else None
    latency = m["latency"]["phases"] if m is not None and m["latency"] else records
    svg = _timeline(data, analysis)
    drift = drift_view(data)
    origin = data.run.started_at if data.run is not None else (data.events[0]["t"] if data.events else None)
    ctx = {
        "csp": Markup(CSP), "data": data, "run": data.run, "summary": summary, "m": m, "verdicts": data.verdicts,
        "outcome": summary.outcome.value if summary.outcome is not None else None,
        "latency": latency or {}, "latency_from_records": not (m is not None and m["latency"]) and bool(latency),
        "latency_meta": m["latency"] if m is not None and m["latency"] else None,
        "load": (m["load"] if m is not None and m["load"] else None) or data.load,
        "timeline_svg": Markup(svg) if svg is not None else None, "analysis": analysis,
        "journal": journal_view(data.journal), "events": _events_view(data, origin),
        "events_total": len(data.events), "events_max": _EVENTS_MAX,
        "audit": data.run.audit.model_dump(exclude_none=True, exclude_defaults=True) if data.run is not None else {},
        "summary_json": Markup(json_for_html(summary.model_dump(mode="json", by_alias=True))),
        "drillbit_version": __version__, "generated_at": _utc(datetime.now(UTC).timestamp()),
        "drift": drift, "drift_memory_svg": Markup(drift.memory_svg) if drift and drift.memory_svg else None,
        "drift_latency_svg": Markup(drift.latency_svg) if drift and drift.latency_svg else None,
    }  # fmt: skip
    html: str = environment().get_template("report.html.j2").render(**ctx)
    return html
