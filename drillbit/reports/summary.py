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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drillbit.core.clock import to_iso
from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.core.measurements import RtoOutage
from drillbit.core.project import defaults_root
from drillbit.core.results import LatencyStats, LoadMeasurement, Measurements, Outcome, Verdict
from drillbit.core.safeio import read_text
from drillbit.core.yamlio import parse_json
from drillbit.reports.rundata import RunData

__all__ = [
    "SCHEMA_FILE",
    "MeasurementSummary",
    "Summary",
    "load_schema",
    "read_summary",
    "schema_json",
    "summarize",
]

SCHEMA_ID = "drillbit.summary/2"  # /2: latency entries carry the analyzer's full LatencyStats
#: summaries an older drillbit wrote: rebuilt from their run directory, never read as they are
OLDER_SCHEMAS = ("drillbit.summary/1",)
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
    downtime_error_bound_s: float | None = None  # |downtime_s - truth| <= this; None: no bound (or not measured)
    outages: list[RtoOutage] = Field(default_factory=list)  # every failing run after the fault (sum: downtime_s)
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
    latency: dict[str, LatencyStats] = Field(default_factory=dict)  # phase -> figures ("all": whole run)
    latency_source: Literal["measurements.json", "request records"] | None = None
    unmeasured: dict[str, str] = Field(default_factory=dict)


class Summary(_Model):
    schema_: Literal["drillbit.summary/2"] = Field("drillbit.summary/2", alias="schema")
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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _not_numbers(phases: dict[str, LatencyStats]) -> list[str]:
    """Each latency figure that is NaN or infinite (summary.json shows it as null): said, not hidden."""
    return [f"measurements.json: latency.phases.{name}.{k} is {v} (not a finite number): shown as null"
            for name, s in phases.items() for k, v in s.model_dump().items()
            if isinstance(v, float) and not math.isfinite(v)]  # fmt: skip


#: figures summary.json cannot show as null: a non-finite one is shown as 0 (and said, by _not_numbers)
_NOT_NULL = ("error_rate", "throughput_rps", "achieved_rps")


def _finite_stats(s: LatencyStats) -> LatencyStats:
    """The stats with every NaN or infinite figure null (JSON has neither)."""
    bad: dict[str, Any] = {k: 0.0 if k in _NOT_NULL else None for k, v in s.model_dump().items()
           if isinstance(v, float) and not math.isfinite(v)}  # fmt: skip
    if not all(math.isfinite(t) for t in s.window):
        bad["window"] = tuple(t if math.isfinite(t) else 0.0 for t in s.window)
    return s.model_copy(update=bad) if bad else s


def _load(m: Measurements | None, raw: dict[str, Any] | None) -> LoadMeasurement | None:
    """The load generator's account: measurements.json's copy, else load.json itself when it fits."""
    if m is not None and m.load is not None:
        return m.load
    try:
        return LoadMeasurement.model_validate(raw) if raw is not None else None
    except ValidationError:
        return None


def _measurements(m: Measurements) -> MeasurementSummary:
    rto, rpo, auto, avail, replicas = m.rto, m.rpo, m.autoscaling, m.availability, m.replicas
    return MeasurementSummary(
        fault_at=m.fault_at, rto_s=_finite(rto.rto_s) if rto else None,
        rto_error_bound_s=_finite(rto.error_bound_s) if rto else None, rto_recovered=rto.recovered if rto else None,
        detect_s=_finite(rto.detect_s) if rto else None, downtime_s=_finite(rto.downtime_s) if rto else None,
        downtime_error_bound_s=rto.downtime_error_bound_s if rto else None,
        outages=list(rto.outages) if rto else [],
        rpo_lost=rpo.lost if rpo else None, rpo_window_s=_finite(rpo.window_s) if rpo else None,
        rpo_indeterminate=rpo.indeterminate if rpo else None, rpo_duplicates=len(rpo.duplicates) if rpo else None,
        availability_ratio=p / 100.0 if avail and (p := _finite(avail.percent)) is not None else None,
        autoscaling_first_new_ready_s=_finite(auto.first_new_ready_s) if auto else None,
        autoscaling_capacity_s=_finite(auto.capacity_s) if auto else None,
        autoscaling_sla_held=auto.sla_held if auto else None,
        replicas_restored_s=_finite(replicas.restored_s) if replicas else None, unmeasured=dict(m.unmeasured),
    )  # fmt: skip


def summarize(data: RunData, latency: dict[str, LatencyStats] | None = None,
              latency_source: str | None = None) -> Summary:  # fmt: skip
    """The summary of a loaded run; ``latency``: per-phase figures when measurements.json has none."""
    run = data.run
    m = data.measurements
    ms = _measurements(m) if m is not None else MeasurementSummary()
    load = _load(m, data.load)
    if load is not None:
        ms.load_intended_rps, ms.load_achieved_rps = _finite(load.intended_rps), _finite(load.achieved_rps)
        ms.load_saturated = load.saturated
    problems = list(data.problems)
    if m is not None and m.latency is not None:
        ms.latency = {k: _finite_stats(v) for k, v in m.latency.phases.items()}
        ms.latency_source = "measurements.json"
        problems += _not_numbers(m.latency.phases)
    elif latency:
        ms.latency = {k: _finite_stats(v) for k, v in latency.items()}
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
    if isinstance(raw, dict) and raw.get("schema") in OLDER_SCHEMAS:
        raise ConfigError(str(path), f"written by an older drillbit ({raw['schema']}, this one reads {SCHEMA_ID}): "
                                     f"rebuild it with `drill report {path.parent}`")  # fmt: skip
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        where = [".".join(map(str, e.path)) or "(top level)" for e in errors[:5]]
        raise ConfigError(str(path), [f"{w}: {e.message}" for w, e in zip(where, errors, strict=False)])
    return Summary.model_validate(raw)
