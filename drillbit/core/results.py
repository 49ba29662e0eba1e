"""What a drill concludes, as files: run.json, measurements.json, verdicts.json (the run directory contract).

Every stage after the drill (reports, sealing, trends) reads these files and nothing else, so a
report can be rebuilt from the run directory alone. The models are pydantic so each file is
validated where it is read and its JSON schema can be published (``drill schema``).

- ``run.json`` (:class:`RunInfo`): who ran what against which target, when, and how it ended.
- ``measurements.json`` (:class:`Measurements`): the analyzers' results. Each section is a typed
  model (``drillbit.core.measurements``: the analyzer's own keys) or ``None`` with the reason in
  ``unmeasured[section]``: a probe that could not measure never yields a number. It also holds the
  drill's phases and its faults (each fault's span: injected -> reverted), worked out once by
  ``drillbit.analysis``, so a report reads them instead of working them out again.
- ``verdicts.json`` (:class:`VerdictSet`): one :class:`Verdict` per SLA and the drill's outcome.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drillbit.core.errors import ConfigError, validation_problems
from drillbit.core.measurements import (
    AlertsMeasurement,
    AutoscalingMeasurement,
    AvailabilityMeasurement,
    AvailabilityPhase,
    DriftMeasurement,
    ExperimentMeasurement,
    FaultRto,
    IntegrityCheckResult,
    IntegrityMeasurement,
    IntegrityViolation,
    LatencyMeasurement,
    LatencyStats,
    LoadMeasurement,
    MarketDataMeasurement,
    PitrMeasurement,
    PromqlMeasurement,
    ReplicasMeasurement,
    ReplicationLagMeasurement,
    RpoMeasurement,
    RtoMeasurement,
    RtoOutage,
    SamplerCoverage,
    SpikeDelivery,
    SpikeMeasurement,
)
from drillbit.core.safeio import write_text

__all__ = [
    "JOURNAL",
    "MEASUREMENTS",
    "RUN",
    "VERDICTS",
    "AlertsMeasurement",
    "AuditFields",
    "AutoscalingMeasurement",
    "AvailabilityMeasurement",
    "AvailabilityPhase",
    "DriftMeasurement",
    "ExperimentMeasurement",
    "Fault",
    "FaultRto",
    "FileRef",
    "IntegrityCheckResult",
    "IntegrityMeasurement",
    "IntegrityViolation",
    "LatencyMeasurement",
    "LatencyStats",
    "LoadMeasurement",
    "ManifestFinding",
    "ManifestsRecord",
    "MarketDataMeasurement",
    "Measurements",
    "Outcome",
    "PitrMeasurement",
    "ReplicasMeasurement",
    "ReplicationLagMeasurement",
    "RpoMeasurement",
    "RtoMeasurement",
    "RtoOutage",
    "RunInfo",
    "RunStatus",
    "SamplerCoverage",
    "SpikeDelivery",
    "SpikeMeasurement",
    "Verdict",
    "VerdictSet",
    "exit_code_for",
    "read_measurements",
    "read_model",
    "write_model",
]

M = TypeVar("M", bound=BaseModel)

RUN = "run.json"
MEASUREMENTS = "measurements.json"
VERDICTS = "verdicts.json"
#: the Chaos Toolkit journal of the experiment as run, secrets redacted
JOURNAL = "journal.json"


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


class RunStatus(StrEnum):
    RUNNING = "running"  # the drill process is (or was, if it crashed) still going
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM: faults rolled back, what was measured kept
    STOPPED = "stopped"  # a stop condition fired (a CloudWatch alarm): rolled back and healed, exit 3
    CRASHED = "crashed"  # found by a later invocation: the drill process died without finishing
    ERROR = "error"  # the harness or the environment failed (exit 4)


def exit_code_for(outcome: Outcome) -> int:
    """0 PASS, 1 FAIL, 3 INCONCLUSIVE (2 and 4 are usage and environment errors, decided elsewhere)."""
    return {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.INCONCLUSIVE: 3}[outcome]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileRef(_Model):
    path: str  # as given (relative to the working directory of the drill)
    sha256: str


class AuditFields(_Model):
    """Free-text fields a DR test record needs; each appears in the report only when given."""

    scope: str | None = None
    objectives: str | None = None
    participants: list[str] = Field(default_factory=list)
    approver: str | None = None
    issues_found: str | None = None
    remediation: str | None = None


class ManifestFinding(_Model):
    rule: str
    requirement: str
    severity: Literal["info", "warning", "error"]
    object: str
    file: str
    message: str
    source: str


class ManifestsRecord(_Model):
    """The deployment manifests a drill exercised (``drillbit.manifests``): the overlay, the hash of
    its rendering, and what the checks found (every source file is in ``RunInfo.manifests``)."""

    path: str
    kustomize: bool
    rendered_sha256: str
    objects: int
    kube_version: str
    checkov: str | None  # its version; None: not run during the drill (drill manifests check runs it)
    counts: dict[str, int]
    findings: list[ManifestFinding] = Field(default_factory=list)


class RunInfo(_Model):
    schema_: Literal["drillbit.run/1"] = Field("drillbit.run/1", alias="schema")
    id: str  # <UTC timestamp>-<experiment>
    mode: Literal["run", "observe"] = "run"  # observe: drillbit measured and did not inject
    experiment: FileRef | None = None
    experiment_title: str | None = None
    target: dict[str, Any]  # {"name", "kind", "fingerprint", ...}: what was exercised
    profile: str | None = None  # load profile name; None when no load was applied
    locustfile: str | None = None  # the load's locustfile (its name: the SLA file's locustfiles: key)
    sla: FileRef | None = None
    git_commit: str | None = None  # of the manifests under test (the working tree's HEAD)
    git_dirty: bool | None = None
    manifests: list[FileRef] = Field(default_factory=list)  # infra under test, with hashes
    manifests_check: ManifestsRecord | None = None  # the rendered deployment manifests and their findings
    operator: str
    audit: AuditFields = Field(default_factory=AuditFields)
    versions: dict[str, str] = Field(default_factory=dict)  # drillbit, python, chaostoolkit-lib, locust, ...
    host: str
    pid: int
    started_at: float  # epoch s (UTC)
    # the run's one clock anchor (wall, monotonic: drillbit.core.clock), for a process that joins later (drill mark)
    clock_anchor: tuple[float, float] | None = None
    ended_at: float | None = None
    status: RunStatus = RunStatus.RUNNING
    outcome: Outcome | None = None
    exit_code: int | None = None
    notes: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Fault(_Model):
    """One fault the drill injected (from events.jsonl), and whether it really landed."""

    activity: str  # the experiment activity's name
    id: str | None = None  # unique per injection (events' fault_id); None in runs recorded before ids
    action: str  # module.func
    injected_at: float
    reverted_at: float | None = None  # when its rollback (or the fault's own end) was observed
    landed: bool
    detail: dict[str, Any] = Field(default_factory=dict)  # what the target reported (pids killed, new primary)
    error: str | None = None  # why it did not land


class Measurements(_Model):
    schema_: Literal["drillbit.measurements/1"] = Field("drillbit.measurements/1", alias="schema")
    fault_at: float | None  # the first fault's injection time (None: no fault was injected)
    fault_source: Literal["injected", "marked", "detected"] | None = None
    faults: list[Fault] = Field(default_factory=list)  # each one's span: injected_at -> reverted_at
    phases: dict[str, tuple[float, float]] = Field(default_factory=dict)  # name -> [start, end) epoch s
    rto: RtoMeasurement | None = None
    rpo: RpoMeasurement | None = None
    latency: LatencyMeasurement | None = None
    availability: AvailabilityMeasurement | None = None
    replicas: ReplicasMeasurement | None = None  # after the fault
    autoscaling: AutoscalingMeasurement | None = None
    spike: SpikeMeasurement | None = None  # spike_load's own requests: per-phase latency and errors, whether it landed
    alerts: AlertsMeasurement | None = None  # alert latency, from the Alertmanager webhooks drillbit received
    promql: PromqlMeasurement | None = None  # the target's own Prometheus figures (the experiment's promql:)
    integrity: IntegrityMeasurement | None = None  # trading-integrity checks against the database after recovery
    pitr: PitrMeasurement | None = None  # a point-in-time restore's figures (restore_to_point)
    replication_lag: ReplicationLagMeasurement | None = None  # replicas' lag behind the primary over the drill
    marketdata: MarketDataMeasurement | None = None  # market-data latency and the feed's gaps (the probe's trades)
    drift: DriftMeasurement | None = None  # a soak's drift: each harness process's memory slope, latency per window
    coverage: dict[str, SamplerCoverage] = Field(default_factory=dict)  # sampler -> what it covered
    load: LoadMeasurement | None = None  # load.json
    experiment: ExperimentMeasurement | None = None  # journal status, deviated, steady state before/after
    unmeasured: dict[str, str] = Field(default_factory=dict)  # section -> why there is no number

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Verdict(_Model):
    sla: str  # the SLA's key in the SLA file, e.g. "rto"
    requirement: str  # seed id, e.g. "R9.4"
    requirement_text: str  # e.g. "RTO < 15 min"
    metric: str  # e.g. "rto_s"
    op: Literal["<", "<=", ">", ">=", "=="]
    target: float
    unit: str  # "s", "ms", "%", "count"
    measured: float | None  # None: not measured (the verdict is then INCONCLUSIVE)
    verdict: Outcome
    how: str  # how it was measured: sampling interval, error bound, corrected/uncorrected
    reason: str | None = None  # why FAIL or INCONCLUSIVE


class VerdictSet(_Model):
    schema_: Literal["drillbit.verdicts/1"] = Field("drillbit.verdicts/1", alias="schema")
    outcome: Outcome
    exit_code: int
    verdicts: list[Verdict]
    inconclusive_reasons: list[str] = Field(default_factory=list)  # drill-wide: fault not landed, saturated...

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def write_model(path: Path, model: BaseModel) -> Path:
    """Write atomically (a crash never leaves half a file)."""

    return write_text(path, model.model_dump_json(indent=2, by_alias=True) + "\n")


def read_model(path: Path, model: type[M]) -> M:
    return model.model_validate(json.loads(path.read_text(encoding="utf-8")))


def read_measurements(path: Path) -> Measurements:
    """measurements.json, validated; ConfigError (one line) names the file and each field that does not fit."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(str(path), f"not JSON ({err})") from None
    try:
        return Measurements.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(str(path), validation_problems(err)) from None
