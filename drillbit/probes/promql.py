"""PromQL probes: Chaos Toolkit probes (and report figures) from a team's own Prometheus.

Plain functions over Prometheus's HTTP query API (``/api/v1/query``, ``/api/v1/query_range``).
A probe that cannot measure raises :class:`chaoslib.exceptions.ActivityFailed` with a one-line
reason naming the query: an empty result, several series where one was expected, a NaN or an
infinity, an HTTP error, a query error from Prometheus, Prometheus unreachable. It never returns
a made-up value, so a steady-state hypothesis on an unmeasurable query is *not met*, never met by
default.

Which Prometheus: the ``prometheus_url`` argument, else the experiment's ``configuration``
key ``prometheus_url``, else ``$DRILL_PROMETHEUS_URL``. Any URL is allowed (a team's own
Prometheus); userinfo and query values in it are masked in every message.

"Error rate below 0.1 % over 1 min", from the team's own metrics, as a steady-state hypothesis
(``experiments/examples/promql-steady-state.yaml`` is a whole experiment; the ``or 0 * ...``
makes "no 5xx series yet" an error rate of 0 while there is traffic, and no traffic at all an
empty result, so unmeasurable)::

    configuration:
      prometheus_url: {type: env, key: DRILL_PROMETHEUS_URL, default: "http://127.0.0.1:9090"}
    steady-state-hypothesis:
      title: the API serves its traffic
      probes:
        - type: probe
          name: error-rate-below-0.1-percent-over-1m
          tolerance: true
          provider:
            type: python
            module: drillbit.probes.promql
            func: query_within
            arguments:
              query: >-
                (sum(rate(sut_http_request_duration_seconds_count{status="5xx"}[1m]))
                 or 0 * sum(rate(sut_http_request_duration_seconds_count[1m])))
                / sum(rate(sut_http_request_duration_seconds_count[1m]))
              op: "<"
              threshold: 0.001
        - type: probe                      # or a numeric tolerance on the value itself
          name: p95-below-100ms
          tolerance: {type: range, range: [0, 0.1]}
          provider:
            type: python
            module: drillbit.probes.promql
            func: query_value
            arguments:
              query: histogram_quantile(0.95, sum by (le) (rate(sut_http_request_duration_seconds_bucket[1m])))

The report's figures (:func:`promql_figures`) evaluate named queries over a drill's window; a
query that cannot be measured is reported with its reason, never as 0.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed
from pydantic import BaseModel, ConfigDict, ValidationError

from drillbit.core.redact import redact_url
from drillbit.core.safeio import write_text

__all__ = [
    "OPS",
    "PROMETHEUS_URL_ENV",
    "PROMETHEUS_URL_KEY",
    "PROMQL_SAMPLES",
    "promql_figures",
    "query_range_figures",
    "query_value",
    "query_within",
    "record_promql",
    "resolve_prometheus_url",
]

log = logging.getLogger(__name__)

PROMETHEUS_URL_KEY = "prometheus_url"  # the Chaos Toolkit configuration key
PROMETHEUS_URL_ENV = "DRILL_PROMETHEUS_URL"
DEFAULT_TIMEOUT_S = 10.0
#: Prometheus refuses a range query of more than 11,000 points per series; stay well below
MAX_POINTS = 1000
_SHOWN_QUERY = 160  # characters of a query quoted in a reason

#: the comparisons ``query_within`` accepts (symbols, or their names for YAML that dislikes ``<``)
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne,
}  # fmt: skip


class _Answer(BaseModel):
    """Prometheus's API envelope (validated at the edge: anything else is not a measurement)."""

    model_config = ConfigDict(extra="ignore")
    status: str
    data: dict[str, Any] | None = None
    errorType: str | None = None  # Prometheus's field name
    error: str | None = None


def _shown(query: str) -> str:
    one_line = " ".join(query.split())
    return one_line if len(one_line) <= _SHOWN_QUERY else one_line[: _SHOWN_QUERY - 3] + "..."


def _fail(query: str, why: str) -> ActivityFailed:
    return ActivityFailed(f"PromQL {_shown(query)!r}: {' '.join(why.split())}")


def resolve_prometheus_url(prometheus_url: str | None = None, configuration: Mapping[str, Any] | None = None) -> str:
    """The argument, else ``configuration['prometheus_url']``, else ``$DRILL_PROMETHEUS_URL``."""
    url = prometheus_url or (configuration or {}).get(PROMETHEUS_URL_KEY) or os.environ.get(PROMETHEUS_URL_ENV)
    if not url or not isinstance(url, str):
        raise ActivityFailed(f"no Prometheus URL: pass prometheus_url, set the configuration key "
                             f"{PROMETHEUS_URL_KEY!r} or ${PROMETHEUS_URL_ENV}")  # fmt: skip
    if not url.startswith(("http://", "https://")):
        raise ActivityFailed(f"Prometheus URL {redact_url(url)!r} is not http(s)")
    return url.rstrip("/")


def _api(url: str, path: str, query: str, params: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """``data`` of a successful answer, else ActivityFailed with Prometheus's own reason."""
    where = redact_url(url)
    try:
        response = httpx.get(f"{url}{path}", params={"query": query, **params}, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise _fail(query, f"Prometheus at {where} unreachable: {type(err).__name__}: {err}") from None
    try:
        answer: _Answer | None = _Answer.model_validate_json(response.content)
    except ValidationError:
        answer = None
    if answer is not None and answer.status == "error":
        raise _fail(query, f"Prometheus at {where} refused it ({response.status_code} {answer.errorType}): "
                           f"{answer.error}")  # fmt: skip
    if response.status_code != 200:
        raise _fail(query, f"Prometheus at {where}{path} answered HTTP {response.status_code}: {response.text[:200]}")
    if answer is None or answer.status != "success" or answer.data is None:
        raise _fail(query, f"{where}{path} did not answer as Prometheus's query API")
    return answer.data


def _number(query: str, raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _fail(query, f"not a number: {str(raw)[:40]!r}") from None
    if math.isnan(value):
        raise _fail(query, "the value is NaN (e.g. 0/0: no traffic in the window)")
    if math.isinf(value):
        raise _fail(query, f"the value is {raw} (a division by zero)")
    return value


def _labels(metric: Any) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted((metric or {}).items())) + "}"


def query_value(
    query: str,
    at: float | str | None = None,
    prometheus_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> float:
    """The value of an instant query (at ``at``: epoch seconds or RFC 3339; default now).

    The query must give exactly one number: a scalar, or a vector of one series (aggregate
    several with ``sum``/``max``...). No series, several, NaN or infinity raise ActivityFailed.
    """
    url = resolve_prometheus_url(prometheus_url, configuration)
    data = _api(url, "/api/v1/query", query, {} if at is None else {"time": str(at)}, timeout_s)
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return _number(query, result[1])
    if kind != "vector" or not isinstance(result, list):
        raise _fail(query, f"gives a {kind}, not an instant vector or scalar")
    if not result:
        raise _fail(query, "no series (empty result): nothing matched, or the series are not scraped (yet)")
    if len(result) > 1:
        shown = ", ".join(_labels(s.get("metric")) for s in result[:3])
        raise _fail(query, f"{len(result)} series ({shown}{', ...' if len(result) > 3 else ''}): aggregate them "
                           "to one (sum, max, ...)")  # fmt: skip
    value = result[0].get("value")
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(query, "a sample without a value")
    return _number(query, value[1])


def query_within(
    query: str,
    op: str,
    threshold: float,
    at: float | str | None = None,
    prometheus_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> bool:
    """``query_value(query) <op> threshold`` (for a ``tolerance: true`` steady-state probe).

    ``op`` is one of ``< <= > >= == !=`` (or ``lt le gt ge eq ne``). An unmeasurable query raises,
    so the hypothesis is not met; it is never taken as within.
    """
    compare = OPS.get(str(op).strip())
    if compare is None:
        raise ActivityFailed(f"PromQL {_shown(query)!r}: op {op!r} is not one of {' '.join(OPS)}")
    try:
        limit = float(threshold)
    except (TypeError, ValueError):
        raise ActivityFailed(f"PromQL {_shown(query)!r}: threshold {threshold!r} is not a number") from None
    value = query_value(query, at=at, prometheus_url=prometheus_url, timeout_s=timeout_s, configuration=configuration)
    within = bool(compare(value, limit))
    log.info("PromQL %r = %s: %s %s", _shown(query), value, "within" if within else "NOT within", f"{op} {limit}")
    return within


def _step(start: float, end: float, step: float | None) -> float:
    if step is not None:
        if step <= 0:
            raise ValueError(f"step must be > 0 (got {step})")
        return float(step)
    return max(1.0, math.ceil((end - start) / MAX_POINTS))


def query_range_figures(
    query: str,
    start: float,
    end: float,
    step: float | None = None,
    prometheus_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A range query over ``[start, end]`` (epoch seconds) as JSON-friendly figures::

        {"query", "start", "end", "step",
         "series": [{"labels": {...}, "points": [[t, v], ...], "min", "max", "last", "not_a_number": n}]}

    A NaN or infinite point is kept as ``null`` and counted in ``not_a_number`` (never 0); no
    series at all, or none with a finite point, raises ActivityFailed.
    """
    if not end > start:
        raise _fail(query, f"empty window: end {end} is not after start {start}")
    url = resolve_prometheus_url(prometheus_url, configuration)
    step_s = _step(start, end, step)
    params = {"start": repr(float(start)), "end": repr(float(end)), "step": repr(step_s)}
    data = _api(url, "/api/v1/query_range", query, params, timeout_s)
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(result, list):
        raise _fail(query, f"a range query gave a {kind}, not a matrix")
    if not result:
        raise _fail(query, f"no series between {start} and {end} (empty result)")
    series = []
    for s in result:
        points: list[list[float | None]] = []
        for t, raw in s.get("values") or []:
            try:
                v: float | None = float(raw)
            except (TypeError, ValueError):
                v = None
            points.append([float(t), v if v is not None and math.isfinite(v) else None])
        finite = [v for _, v in points if v is not None]
        series.append({
            "labels": dict(s.get("metric") or {}), "points": points,
            "min": min(finite) if finite else None, "max": max(finite) if finite else None,
            "last": finite[-1] if finite else None, "not_a_number": len(points) - len(finite),
        })  # fmt: skip
    if all(s["min"] is None for s in series):
        raise _fail(query, f"no finite value between {start} and {end} (every point NaN or infinite)")
    return {"query": query, "start": float(start), "end": float(end), "step": step_s, "series": series}


def promql_figures(
    prometheus_url: str,
    queries: Mapping[str, str],
    start: float,
    end: float,
    step: float | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """Each named query evaluated at ``end`` (``value``) and over ``[start, end]`` (``min``/``max``).

    Returns ``{"prometheus_url" (masked), "start", "end", "step", "figures": {name: {"query",
    "value", "min", "max", "measured", "error"}}, "errors": {name: reason}}``. A query that cannot
    be measured has ``measured: false``, ``null`` figures and its reason: never 0. Each query
    must give one series (aggregate it); the range figures are left ``null`` with a reason when
    the range query fails though the value was measured. Never raises for a query's failure.
    """
    figures: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    step_s = _step(start, end, step)
    for name, query in queries.items():
        figure: dict[str, Any] = {"query": query, "value": None, "min": None, "max": None, "measured": False,
                                  "error": None}  # fmt: skip
        reasons = []
        try:
            figure["value"] = query_value(query, at=end, prometheus_url=prometheus_url, timeout_s=timeout_s)
            figure["measured"] = True
        except ActivityFailed as err:
            reasons.append(str(err))
        if figure["measured"]:  # an unmeasurable value: its range would fail the same way (or mislead)
            try:
                ranged = query_range_figures(query, start, end, step=step_s, prometheus_url=prometheus_url,
                                             timeout_s=timeout_s)  # fmt: skip
                if len(ranged["series"]) != 1:
                    reasons.append(f"PromQL {_shown(query)!r}: the range gives {len(ranged['series'])} series; "
                                   "aggregate them to one for min/max")  # fmt: skip
                else:
                    figure["min"], figure["max"] = ranged["series"][0]["min"], ranged["series"][0]["max"]
            except ActivityFailed as err:
                reasons.append(f"range: {err}")
        if reasons:
            figure["error"] = errors[name] = "; ".join(reasons)
        figures[name] = figure
    if errors:
        log.warning("PromQL figures: %d of %d queries not (fully) measured: %s", len(errors), len(queries),
                    next(iter(errors.values())))  # fmt: skip
    return {"prometheus_url": redact_url(prometheus_url.rstrip("/")), "start": float(start), "end": float(end),
            "step": step_s, "figures": figures, "errors": errors}  # fmt: skip


#: a drill's PromQL figures (the experiment's ``promql:`` queries over the drill), or why there are none
PROMQL_SAMPLES = "samples/promql.json"


def record_promql(run_dir: Path, prometheus_url: str | None, queries: dict[str, str], start: float,
                  end: float) -> dict[str, Any]:  # fmt: skip
    """Evaluate the experiment's named queries over ``[start, end]`` into the run directory; a target
    without a Prometheus leaves the reason instead (the PromQL SLAs are then INCONCLUSIVE)."""
    if prometheus_url is None:
        data: dict[str, Any] = {"unmeasured": "the target names no Prometheus (the sandbox: --with-monitoring)"}
    else:
        data = promql_figures(prometheus_url, queries, start, end)
    path = run_dir / PROMQL_SAMPLES
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return data
