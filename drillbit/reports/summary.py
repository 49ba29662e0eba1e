"""summary.json: the drill's verdicts and headline measurements, machine-readable, with a published schema.

The model below is the contract; its JSON schema is published as ``reports/schemas/summary.schema.json``
(``drill report schema`` prints it; a unit test keeps the file in step with the model). Consumers
(``drill report trend``/``compare``, CI) validate what they read against that file with
``jsonschema``, so a summary from another drillbit version fails with the field it disagrees on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.clock import to_iso
from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.core.project import defaults_root
from drillbit.core.results import Outcome, Verdict
from drillbit.core.safeio import read_text
from drillbit.core.yamlio import parse_json
from drillbit.reports.rundata import RunData

__all__ = [
    "SCHEMA_FILE",
    "LatencySummary",
    "Summary",
    "load_schema",
    "read_summary",
    "schema_json",
    "summarize",
]

SCHEMA_ID = "drillbit.summary/1"
SCHEMA_FILE = "schemas/summary.schema.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentRef(_Model):
    path: str | None = None
    sha256: str | None = None
    title: str | None = None


class RunSummary(_Model):
    id: str
    mode: Literal["run", "observe"] | None = None
    status: str | None = None  # running | completed | interrupted | crashed | error; None: no run.json
    experiment: ExperimentRef = Field(default_factory=ExperimentRef)
    target: dict[str, Any] = Field(default_factory=dict)
    profile: str | None = None
    git_commit: str | None = None
    operator: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    started_at_utc: str | None = None
    ended_at_utc: str | None = None
    duration_s: float | None = None
    versions: dict[str, str] = Field(default_factory=dict)


class LatencySummary(_Model):
    count: int
    error_rate: float
    throughput_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    uncorrected_p50_ms: float | None
    uncorrected_p95_ms: float | None
    uncorrected_p99_ms: float | None


class FaultSummary(_Model):
    activity: str
    action: str
    injected_at: float
    reverted_at: float | None
    landed: bool


class MeasurementSummary(_Model):
    fault_at: float | None = None
    rto_s: float | None = None
    rto_error_bound_s: float | None = None
    rto_recovered: bool | None = None
    detect_s: float | None = None
    downtime_s: float | None = None
    rpo_lost: int | None = None
    rpo_window_s: float | None = None
    rpo_indeterminate: int | None = None
    rpo_duplicates: int | None = None
    availability_ratio: float | None = None
    autoscaling_first_new_ready_s: float | None = None
    autoscaling_capacity_s: float | None = None
    autoscaling_sla_held: bool | None = None
    replicas_restored_s: float | None = None  # fault -> every region back at its desired ready replicas
    load_intended_rps: float | None = None
    load_achieved_rps: float | None = None
    load_saturated: bool | None = None
    latency: dict[str, LatencySummary] = Field(default_factory=dict)  # phase -> figures ("all": whole run)
    latency_source: Literal["measurements.json", "request records"] | None = None
    unmeasured: dict[str, str] = Field(default_factory=dict)


class Summary(_Model):
    schema_: Literal["drillbit.summary/1"] = Field("drillbit.summary/1", alias="schema")
    run: RunSummary
    outcome: Outcome | None  # None: no verdicts (the drill did not get that far)
    exit_code: int | None
    verdicts: list[Verdict] = Field(default_factory=list)
    inconclusive_reasons: list[str] = Field(default_factory=list)
    measurements: MeasurementSummary = Field(default_factory=MeasurementSummary)
    faults: list[FaultSummary] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)  # expected run-directory files that are absent
    problems: list[str] = Field(default_factory=list)  # files present but unreadable

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def schema_json() -> dict[str, Any]:
    """The JSON schema of summary.json, as generated from :class:`Summary`."""
    schema = Summary.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def load_schema() -> dict[str, Any]:
    """The published schema (the shipped project's ``reports/schemas/summary.schema.json``; a unit
    test keeps it equal to :func:`schema_json`, which stands in where the file was not installed)."""
    try:
        resource = defaults_root() / "reports" / SCHEMA_FILE
    except EnvironmentFailure:
        return schema_json()
    if not resource.is_file():
        return schema_json()
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _availability_ratio(avail: dict[str, Any]) -> float | None:
    """measurements.availability says ``percent`` (older run directories: ``ratio``)."""
    percent = _finite(avail.get("percent"))
    return percent / 100.0 if percent is not None else _finite(avail.get("ratio"))


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _not_numbers(phases: dict[str, Any]) -> list[str]:
    """Each latency figure that is NaN or infinite (summary.json shows it as null): said, not hidden."""
    return [f"measurements.json: latency.phases.{name}.{k} is {v} (not a finite number): shown as null"
            for name, s in phases.items() if isinstance(s, dict)
            for k, v in s.items() if isinstance(v, float) and not math.isfinite(v)]  # fmt: skip


def _latency(phases: dict[str, Any]) -> dict[str, LatencySummary]:
    out = {}
    for name, s in phases.items():
        if isinstance(s, dict):
            out[str(name)] = LatencySummary(
                count=_int(s.get("count")) or 0, error_rate=_finite(s.get("error_rate")) or 0.0,
                throughput_rps=_finite(s.get("throughput_rps")) or 0.0,
                **{k: _finite(s.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "uncorrected_p50_ms",
                                                  "uncorrected_p95_ms", "uncorrected_p99_ms")},
            )  # fmt: skip
    return out


def summarize(data: RunData, latency: dict[str, Any] | None = None, latency_source: str | None = None) -> Summary:
    """The summary of a loaded run; ``latency``: per-phase figures when measurements.json has none."""
    run = data.run
    m = data.measurements
    ms = MeasurementSummary()
    if m is not None:
        rto, rpo, auto, avail = m.rto or {}, m.rpo or {}, m.autoscaling or {}, m.availability or {}
        load = m.load or data.load or {}
        replicas = m.replicas or {}
        ms = MeasurementSummary(
            fault_at=m.fault_at, rto_s=_finite(rto.get("rto_s")), rto_error_bound_s=_finite(rto.get("error_bound_s")),
            rto_recovered=_bool(rto.get("recovered")), detect_s=_finite(rto.get("detect_s")),
            downtime_s=_finite(rto.get("downtime_s")),
            rpo_lost=_int(rpo.get("lost")), rpo_window_s=_finite(rpo.get("window_s")),
            rpo_indeterminate=_int(rpo.get("indeterminate")),
            rpo_duplicates=len(rpo["duplicates"]) if isinstance(rpo.get("duplicates"), list) else None,
            availability_ratio=_availability_ratio(avail),
            autoscaling_first_new_ready_s=_finite(auto.get("first_new_ready_s")),
            autoscaling_capacity_s=_finite(auto.get("capacity_s")), autoscaling_sla_held=_bool(auto.get("sla_held")),
            replicas_restored_s=_finite(replicas.get("restored_s")),
            load_intended_rps=_finite(load.get("intended_rps")), load_achieved_rps=_finite(load.get("achieved_rps")),
            load_saturated=_bool(load.get("saturated")), unmeasured=dict(m.unmeasured),
        )  # fmt: skip
    elif data.load:
        ms.load_intended_rps = _finite(data.load.get("intended_rps"))
        ms.load_achieved_rps = _finite(data.load.get("achieved_rps"))
        ms.load_saturated = _bool(data.load.get("saturated"))
    problems = list(data.problems)
    if m is not None and m.latency and isinstance(m.latency.get("phases"), dict):
        ms.latency, ms.latency_source = _latency(m.latency["phases"]), "measurements.json"
        problems += _not_numbers(m.latency["phases"])
    elif latency:
        ms.latency = _latency(latency)
        ms.latency_source = "request records" if latency_source is None else latency_source  # type: ignore[assignment]
    experiment = ExperimentRef()
    if run is not None:
        experiment = ExperimentRef(path=run.experiment.path if run.experiment else None,
                                   sha256=run.experiment.sha256 if run.experiment else None,
                                   title=run.experiment_title)  # fmt: skip
    rs = RunSummary(id=data.run_id, experiment=experiment)
    if run is not None:
        rs = RunSummary(
            id=run.id, mode=run.mode, status=str(run.status), experiment=experiment, target=run.target,
            profile=run.profile, git_commit=run.git_commit, operator=run.operator, started_at=run.started_at,
            ended_at=run.ended_at, started_at_utc=to_iso(run.started_at),
            ended_at_utc=to_iso(run.ended_at) if run.ended_at is not None else None,
            duration_s=run.ended_at - run.started_at if run.ended_at is not None else None, versions=run.versions,
        )  # fmt: skip
    v = data.verdicts
    outcome = v.outcome if v is not None else (run.outcome if run is not None else None)
    exit_code = v.exit_code if v is not None else (run.exit_code if run is not None else None)
    faults = [FaultSummary(activity=f.activity, action=f.action, injected_at=f.injected_at, reverted_at=f.reverted_at,
                           landed=f.landed) for f in (m.faults if m is not None else [])]  # fmt: skip
    return Summary(
        run=rs, outcome=outcome, exit_code=exit_code,
        verdicts=list(v.verdicts) if v is not None else [],
        inconclusive_reasons=list(v.inconclusive_reasons) if v is not None else [], measurements=ms, faults=faults,
        missing=list(data.missing), problems=problems,
    )  # fmt: skip


def read_summary(path: Path) -> Summary:
    """Read a summary.json, validated against the published schema; ConfigError names the file and field."""
    raw = parse_json(read_text(path, root=path.parent), str(path))
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        where = [".".join(map(str, e.path)) or "(top level)" for e in errors[:5]]
        raise ConfigError(str(path), [f"{w}: {e.message}" for w, e in zip(where, errors, strict=False)])
    return Summary.model_validate(raw)
