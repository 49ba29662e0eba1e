"""A drill's phases and faults as Grafana annotations, so a team sees the drill on its own dashboards.

drill.yaml names the Grafana and the *environment variable* that holds its API token (a service
account token); the token itself is never written in a file, a log line, an error or a result::

    grafana:
      url: https://grafana.example.internal
      token_env: DRILL_GRAFANA_TOKEN     # the variable's name, not the token
      dashboard_uid: trading-overview    # optional: without it, organisation-wide annotations

Each phase (baseline, fault, recovery, ...) and each fault (inject to revert, or to the target's
verification of it) becomes a region annotation (``POST /api/annotations`` with ``time`` and
``timeEnd`` in epoch ms) tagged ``drillbit``, the run id and the experiment. Grafana being
unreachable or refusing never fails the drill: :func:`post_annotations` returns what was posted
and the errors, and logs one warning line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drillbit.core.events import faults_from_events, read_events
from drillbit.core.redact import Redactor, redact_url, remember_secrets
from drillbit.core.results import RUN
from drillbit.core.rundir import EVENTS

__all__ = [
    "Annotation", "AnnotationsResult", "GrafanaConfig", "annotate_run", "annotations_from_events", "post_annotations",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "DRILL_GRAFANA_TOKEN"
DEFAULT_TIMEOUT_S = 5.0
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_END_KINDS = ("drill.end", "drill.crashed")


class GrafanaConfig(BaseModel):
    """drill.yaml's ``grafana:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(description="Grafana's base URL, e.g. https://grafana.example.internal")
    #: the environment variable holding the API token (null: Grafana takes no token)
    token_env: str | None = Field(DEFAULT_TOKEN_ENV, pattern=_ENV_NAME)
    dashboard_uid: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    tags: list[str] = Field(default_factory=list, description="extra tags on every annotation")
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")) or url.rstrip("/").endswith("://"):
            raise ValueError("must be an http(s):// URL")
        if "@" in url.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("must not carry credentials: name the token's environment variable in token_env")
        return url.rstrip("/")


class Annotation(BaseModel):
    """One Grafana annotation (the body of ``POST /api/annotations``, less the dashboard)."""

    model_config = ConfigDict(extra="forbid")
    time: int  # epoch ms
    timeEnd: int  # epoch ms; == time for a point  (Grafana's field name)
    tags: list[str]
    text: str


class AnnotationsResult(BaseModel):
    """What :func:`post_annotations` did: JSON-friendly (``model_dump()``), with no token in it."""

    url: str  # masked
    attempted: int = 0
    posted: int = 0
    ids: list[int] = Field(default_factory=list)  # Grafana's annotation ids
    errors: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _ms(t: float) -> int:
    return round(float(t) * 1000)


def annotations_from_events(events: Sequence[Mapping[str, Any]], run_id: str, experiment: str,
                            tags: Iterable[str] = ()) -> list[Annotation]:  # fmt: skip
    """Region annotations for each phase (to the next phase or the drill's end) and each fault (to
    its revert, else to the target's verification of it; a point when neither was recorded)."""

    base = ["drillbit", run_id, experiment, *tags]
    events = [e for e in events if isinstance(e.get("t"), int | float)]
    ends = [float(e["t"]) for e in events if e.get("kind") in _END_KINDS]
    last = ends[0] if ends else max((float(e["t"]) for e in events), default=0.0)
    out: list[Annotation] = []
    phases = [e for e in events if e.get("kind") == "phase" and e.get("name")]
    for i, phase in enumerate(phases):
        start = float(phase["t"])
        end = float(phases[i + 1]["t"]) if i + 1 < len(phases) else max(last, start)
        out.append(Annotation(time=_ms(start), timeEnd=_ms(end), tags=[*base, "phase", str(phase["name"])],
                              text=f"drillbit {experiment}: phase {phase['name']} (run {run_id})"))  # fmt: skip
    verified = {str(e["fault_id"]): float(e["t"]) for e in events
                if e.get("kind") == "fault.result" and e.get("role") == "fault" and e.get("fault_id")}  # fmt: skip
    for fault in faults_from_events([dict(e) for e in events]):
        end = fault.reverted_at or (verified.get(fault.id) if fault.id else None) or fault.injected_at
        outcome = "landed" if fault.landed else f"did NOT land: {fault.error}"
        out.append(Annotation(time=_ms(fault.injected_at), timeEnd=_ms(max(end, fault.injected_at)),
                              tags=[*base, "fault", fault.action.rsplit(".", 1)[-1]],
                              text=f"drillbit {experiment}: fault {fault.activity!r} ({fault.action}) {outcome} "
                                   f"(run {run_id})"))  # fmt: skip
    return sorted(out, key=lambda a: (a.time, a.timeEnd))


def post_annotations(
    url: str,
    events: Sequence[Mapping[str, Any]],
    *,
    run_id: str,
    experiment: str,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    dashboard_uid: str | None = None,
    tags: Iterable[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> AnnotationsResult:
    """POST each of the drill's annotations to Grafana at ``url``; never raises for Grafana's sake.

    The token is read from ``$token_env`` (``None``: no Authorization header) and sent only as
    ``Authorization: Bearer``. A variable named but unset or empty, Grafana unreachable (the rest
    are not tried) or an HTTP error are in the result's ``errors``, with one warning logged.
    """
    shown = redact_url(url.rstrip("/"))
    result = AnnotationsResult(url=shown)
    annotations = annotations_from_events(events, run_id, experiment, tags)
    headers = {"Accept": "application/json"}
    token = os.environ.get(token_env, "") if token_env else ""
    if token_env and not token:
        result.errors.append(f"${token_env} is not set: no annotation posted to {shown}")
    elif token:
        remember_secrets([token])  # every later Redactor in this process masks it too
        headers["Authorization"] = f"Bearer {token}"
    redact = Redactor([token] if token else [])
    if not result.errors:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s) as client:
            for annotation in annotations:
                body = annotation.model_dump()
                if dashboard_uid:
                    body["dashboardUID"] = dashboard_uid
                result.attempted += 1
                try:
                    response = client.post("/api/annotations", json=body)
                except httpx.HTTPError as err:  # unreachable, timed out: the rest would wait as long
                    result.errors.append(redact.text(f"Grafana at {shown} unreachable: {type(err).__name__}: {err}"))
                    break
                if response.status_code != 200:  # masked before it is shortened: no half token survives
                    detail = redact.text(" ".join(response.text.split()))[:200]
                    result.errors.append(f"Grafana at {shown} answered HTTP {response.status_code} to an annotation "
                                         f"at {annotation.time} ms: {detail}")  # fmt: skip
                    continue
                result.posted += 1
                ident = _id(response)
                if ident is not None:
                    result.ids.append(ident)
    if result.errors:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        log.warning("Grafana annotations: %d of %d posted to %s; %s%s", result.posted, len(annotations), shown,
                    result.errors[0], more)  # fmt: skip
    return result


def _id(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    ident = body.get("id") if isinstance(body, dict) else None
    return ident if isinstance(ident, int) else None


def annotate_run(run_dir: Path, config: GrafanaConfig) -> AnnotationsResult:
    """:func:`post_annotations` for a run directory (its events.jsonl, the run id and experiment
    from run.json): what the runner calls once the drill has ended."""
    run_dir = Path(run_dir)
    run_id, experiment = run_dir.name, "unknown"
    try:
        info = json.loads((run_dir / RUN).read_text(encoding="utf-8"))
        run_id = str(info.get("id") or run_id)
        ref = info.get("experiment") or {}
        experiment = Path(str(ref.get("path") or "")).stem or str(info.get("experiment_title") or experiment)
    except (OSError, ValueError, AttributeError):
        pass
    try:
        events = read_events(run_dir / EVENTS)
    except OSError as err:
        result = AnnotationsResult(url=redact_url(config.url), errors=[f"no events to annotate: {err}"])
        log.warning("Grafana annotations: none posted to %s; %s", result.url, result.errors[0])
        return result
    return post_annotations(config.url, events, run_id=run_id, experiment=experiment,
                            token_env=config.token_env, dashboard_uid=config.dashboard_uid, tags=config.tags,
                            timeout_s=config.timeout_s)  # fmt: skip
