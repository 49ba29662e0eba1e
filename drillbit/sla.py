"""SLA files: which targets a drill is held to, per experiment, citing the requirement each verifies.

An SLA file (YAML; the default is ``experiments/slas.yaml``, matching the seeds)::

    slas:                       # every SLA drillbit knows, by key
      rto: {metric: rto_s, op: "<", target: 900, requirement: R9.4, text: "RTO < 15 min"}
      p95: {metric: p95_ms, phases: [baseline, after], op: "<", target: 100, requirement: E12000,
            text: "API p95 < 100 ms outside the fault window"}
    default: [rto, rpo, p95]    # the SLAs an experiment is held to unless it says otherwise
    experiments:                # per experiment (by file stem): which SLAs, and overrides
      rolling-update: {use: [errors, p95], override: {p95: {phases: [baseline, fault, recovery, after]}}}
    locustfiles:                # for any experiment whose load runs this locustfile: SLAs added, and
      marketdata:               # dropped (a load that places no order has no order execution to judge)
        add: [marketdata_latency, marketdata_lost]
        drop: [order_execution]
    profiles:                   # the same for any drill whose load runs this profile (by name: soak, or
      soak:                     # a profile file's stem): a soak is held to a latency that holds
        add: [latency_drift]

Metrics are drillbit's own names (``METRICS``); each is read from measurements.json by
``drillbit.verdicts``. Every problem in the file is reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drillbit.core.errors import ConfigError, validation_problems
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_model_file

__all__ = ["DRIFT_METRICS", "MARKETDATA_METRICS", "METRICS", "Sla", "SlaFile", "default_sla_file", "load_sla_file",
           "slas_for"]  # fmt: skip

def default_sla_file() -> Path:
    """The project's SLA file (experiments/slas.yaml)."""
    return current_project().find("experiments", "slas.yaml")

#: metric -> unit
METRICS: dict[str, str] = {
    "rto_s": "s",  # fault -> sustained recovery (availability probe)
    "detect_s": "s",  # fault -> first failed probe
    "downtime_s": "s",
    "rpo_s": "s",  # fault - ack time of the oldest lost write acknowledged before it (0: none; never negative)
    "lost_writes": "count",  # acknowledged writes absent after recovery
    "p50_ms": "ms",
    "p95_ms": "ms",
    "p99_ms": "ms",
    "errors": "count",  # failed requests of the load (per phases)
    "error_rate_percent": "%",
    "availability_percent": "%",  # share of good availability probes in the SLA's phases (default fault, recovery)
    "replicas_restored_s": "s",  # fault -> every region's ready replicas back at desired (replica samples)
    "first_new_replica_s": "s",  # load step -> first new ready replica
    "capacity_s": "s",  # load step -> target capacity
    "scale_out_p95_ms": "ms",  # worst windowed p95 while scaling out
    "alert_latency_s": "s",  # fault -> the last expected alert's first notification at drillbit's receiver
    "alerts_missing": "count",  # expected alerts that never fired
    "unexpected_critical_alerts": "count",  # critical alerts that fired and nobody expected
    "promql_value": "value",  # a named PromQL query of the experiment (promql:), at the drill's end
    "promql_max": "value",  # its maximum over the drill
    "integrity_violations": "count",  # rows the trading-integrity checks found after recovery (probes/integrity.yaml)
    # a point-in-time restore (restore_to_point; drillbit.probes.pitr)
    "restore_time_s": "s",  # the disaster -> the restored node serving
    "pitr_lost_writes": "count",  # heartbeat orders acknowledged before T, absent from the restored node
    "pitr_overshoot": "count",  # heartbeat orders sent after T and rows created after T, present in it
    "pitr_mismatched_rows": "count",  # orders/trades created before T - margin missing, differing or extra
    "backup_age_s": "s",  # the disaster -> the end of the base backup restored
    "wal_archive_age_s": "s",  # the newest archived WAL's age when the restore began
    # replication lag (drillbit.probes.replication)
    "replication_lag_s": "s",  # the worst replica's peak lag behind the primary in the SLA's phases (default all)
    "replication_catch_up_s": "s",  # the last heal -> every replica within 1 s of the primary
    # market data (drillbit.probes.marketdata)
    "marketdata_latency_p95_ms": "ms",  # a trade's acknowledgement -> on the feed, p95 of the probe's trades
    "marketdata_lost": "count",  # trades the feed skipped that the history lacks too, and probe trades never seen
    "marketdata_gaps": "count",  # trades the feed skipped (filled from the history or not)
    # a soak's drift (drillbit.probes.drift), after a warm-up; a soak under 10 min is INCONCLUSIVE
    "harness_memory_slope_mb_min": "MB/min",  # the steepest least-squares RSS slope of the harness's processes
    "p95_drift_ms_per_10min": "ms/10 min",  # the least-squares slope of the p95 per window
    "p95_drift_ratio": "ratio",  # the last window's p95 / the first's
}

#: the metrics the market-data probe measures: a drill held to one of them runs it
MARKETDATA_METRICS = frozenset(m for m in METRICS if m.startswith("marketdata_"))
#: the metrics of a soak's drift (drillbit.probes.drift: the harness samples and the request records)
DRIFT_METRICS = frozenset({"harness_memory_slope_mb_min", "p95_drift_ms_per_10min", "p95_drift_ratio"})

#: the phases a drill has (``all``: the whole run)
PHASES = ("baseline", "fault", "recovery", "after", "all")

Op = Literal["<", "<=", ">", ">=", "=="]


class Sla(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    op: Op
    target: float = Field(ge=0, allow_inf_nan=False)  # every metric is a duration, a count or a percent
    requirement: str = Field(min_length=1)  # seed id, e.g. R9.4
    text: str = Field(min_length=1)  # e.g. "RTO < 15 min"
    phases: list[str] | None = None  # latency/error metrics: which phases (default: all of the run);
    # availability: default fault and recovery ("while the fault runs")
    request: str | None = None  # latency metrics: only requests with this name (e.g. "POST /orders")
    failed: Literal["include", "exclude"] = "include"  # latency: failed requests count at their time to failure
    source: Literal["load", "spike"] = "load"  # latency/error metrics: the drill's load or a spike_load's requests
    capacity: int | None = None  # capacity_s: the target number of ready replicas
    promql: str | None = None  # promql_value/promql_max: the name of the experiment's PromQL query

    @model_validator(mode="after")
    def _known_metric(self) -> Sla:
        if self.metric not in METRICS:
            raise ValueError(f"metric: unknown metric {self.metric!r}: use one of {', '.join(METRICS)}")
        unknown = [p for p in self.phases or [] if p not in PHASES]
        if unknown:
            raise ValueError(f"phases: unknown phase(s) {', '.join(unknown)}: use {', '.join(PHASES)}")
        if METRICS[self.metric] == "%" and self.target > 100:
            raise ValueError(f"target: {self.target:g} is not a percent: use a value within [0, 100]")
        if self.metric.startswith("promql_") and not self.promql:
            raise ValueError(f"promql: required for metric {self.metric} (the name of a query under the "
                             "experiment's promql:)")  # fmt: skip
        if self.metric == "capacity_s" and not self.capacity:
            raise ValueError("capacity: required for metric capacity_s (the target number of ready replicas)")
        return self

    @property
    def unit(self) -> str:
        return METRICS[self.metric]


class ExperimentSlas(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    use: list[str] | None = None
    override: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LocustfileSlas(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    add: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)


class ProfileSlas(LocustfileSlas):
    """SLAs added and dropped for a drill whose load runs a profile (e.g. a soak's drift)."""


class SlaFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    slas: dict[str, Sla]
    default: list[str]
    experiments: dict[str, ExperimentSlas] = Field(default_factory=dict)
    locustfiles: dict[str, LocustfileSlas] = Field(default_factory=dict)  # locustfile -> SLAs added, dropped
    profiles: dict[str, ProfileSlas] = Field(default_factory=dict)  # load profile -> SLAs added, dropped

    @model_validator(mode="after")
    def _references_exist(self) -> SlaFile:
        problems = [f"default: unknown SLA {k!r}: define it under slas" for k in self.default if k not in self.slas]
        for section, by_load in (("locustfiles", self.locustfiles), ("profiles", self.profiles)):
            problems += [f"{section}.{name}.{part}: unknown SLA {k!r}: define it under slas or remove it"
                         for name, spec in by_load.items() for part in ("add", "drop")
                         for k in getattr(spec, part) if k not in self.slas]  # fmt: skip
        for name, exp in self.experiments.items():
            for k in [*(exp.use or []), *exp.override]:
                if k not in self.slas:
                    problems.append(f"experiments.{name}: unknown SLA {k!r}: define it under slas or remove it")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_sla_file(path: Path | None = None) -> SlaFile:
    source = path or default_sla_file()
    return load_model_file(source, SlaFile, missing="no such SLA file: pass an existing file to --sla",
                           shape="slas:, default: and experiments:")  # fmt: skip


def slas_for(sla_file: SlaFile, experiment: str, source: str = "SLA file", *,
             locustfile: str | None = None, profile: str | None = None) -> dict[str, Sla]:  # fmt: skip
    """The SLAs experiment ``experiment`` (file stem) is held to, overrides applied; with ``locustfile``
    (the load the drill runs, by name), as the file's ``locustfiles:`` adjusts them for that load, and
    with ``profile`` (its load profile, a name or a file: by stem) as ``profiles:`` does."""
    spec = sla_file.experiments.get(experiment, ExperimentSlas())
    keys = list(spec.use if spec.use is not None else sla_file.default)
    for by_load, name in ((sla_file.locustfiles, locustfile), (sla_file.profiles, profile)):
        load = by_load.get(Path(name).stem) if name is not None else None
        if load is not None:
            keys = [k for k in keys if k not in load.drop] + [k for k in load.add if k not in keys]
    out = {}
    for key in keys:
        base = sla_file.slas[key]
        change = spec.override.get(key)
        if change:
            try:
                base = Sla.model_validate({**base.model_dump(), **change})
            except ValidationError as err:
                raise ConfigError(source, [f"experiments.{experiment}.override.{key}.{p}"
                                           for p in validation_problems(err)]) from None  # fmt: skip
        out[key] = base
    return out
