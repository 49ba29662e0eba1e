"""Preflight: read an experiment, its drill settings, the SLA file and the load profile, reporting
every problem at once, and turn them into a ``DrillPlan`` (what ``--dry-run`` prints).

Drill settings live in the experiment's Chaos Toolkit ``extensions`` entry named ``drillbit``::

    extensions:
      - name: drillbit
        profile: steady        # load profile (``--profile`` overrides)
        baseline_s: 10         # load and probes before the first fault
        cooldown_s: 10         # after recovery, before stopping (the "after" phase)
        max_recovery_s: 120    # give up waiting for recovery after this long
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drillbit import faults
from drillbit.core.errors import ConfigError, validation_problems
from drillbit.core.redact import experiment_secret_values, remember_secrets
from drillbit.core.yamlio import load_document
from drillbit.experiment import argument_problems, experiment_problems, outside_project
from drillbit.load.profiles import load_profile
from drillbit.load.runner import find_locustfile
from drillbit.sla import Sla, load_sla_file, slas_for

__all__ = ["DrillPlan", "DrillSettings", "load_plan", "region_problems"]

log = logging.getLogger(__name__)

#: lasting faults, and the revert a rollback must call (a fault that heals by itself needs none)
#: the most generator processes one machine runs (Locust's --processes)
MAX_WORKERS = 16
NEEDS_ROLLBACK = {"lose_region": "restore_region", "switch_traffic": "switch_traffic_back"}


class ExpectedAlert(BaseModel):
    """An alert the drill expects to fire (by its alertname); ``when``: only if a fault reported this
    fact true (e.g. ``primary_lost``: the lost region held the database primary); ``since``: its
    condition becomes true at the time (epoch seconds) a fault reported under this name, not at the
    fault (e.g. ``lag_above_target_at``: when the lag a slow link built passed the RPO), so its
    latency is measured from then; expected only once a fault reported it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alert: str = Field(min_length=1, pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$")
    when: str | None = Field(default=None, min_length=1)
    since: str | None = Field(default=None, min_length=1)
    # False: it may fire (an honest page for this fault, e.g. the error budget's burn while a region is
    # lost), so it is neither missing when silent nor unexpected when it fires; its latency is not judged
    required: bool = True


class DrillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "drillbit"
    profile: str = Field(default="steady", min_length=1)
    locustfile: str = Field(default="trader", min_length=1)
    processes: int = Field(default=1, ge=1, le=MAX_WORKERS)
    baseline_s: float = Field(default=10.0, ge=0, le=3600, allow_inf_nan=False)
    cooldown_s: float = Field(default=10.0, ge=0, le=3600, allow_inf_nan=False)
    max_recovery_s: float = Field(default=120.0, gt=0, le=24 * 3600, allow_inf_nan=False)
    stability_s: float = Field(default=5.0, gt=0, le=600, allow_inf_nan=False)
    # the alerts this fault must raise (alert latency, seeds R3.3, R10.1); [] expects none; None
    # (not declared) leaves the alert SLAs unmeasured. A name alone is {alert: NAME}.
    expect_alerts: list[ExpectedAlert] | None = None
    # the team's own figures from the target's Prometheus, by name -> PromQL (one series each):
    # evaluated over the drill, reported beside drillbit's own and judged by SLAs with promql: NAME
    promql: dict[str, str] = Field(default_factory=dict)

    @field_validator("expect_alerts", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [{"alert": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("profile", "locustfile")
    @classmethod
    def _inside_project(cls, value: str) -> str:
        if outside_project(value, Path.cwd()):
            raise ValueError(f"{value!r} leads outside the drill project ({Path.cwd()}): use a shipped name "
                             "or a path inside the project")  # fmt: skip
        return value


@dataclass(frozen=True)
class DrillPlan:
    experiment_path: Path
    experiment: dict[str, Any]
    settings: DrillSettings
    slas: dict[str, Sla]
    sla_path: Path | None
    faults: list[str] = field(default_factory=list)  # activity names that inject a fault
    rollbacks: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.experiment_path.stem

    def describe(self) -> list[str]:
        s = self.settings
        lines = [
            f"experiment   {self.experiment_path} ({self.experiment.get('title')})",
            f"load         profile {s.profile} ({s.locustfile}, {s.processes} process(es))",
            f"baseline     {s.baseline_s:g} s, then the method: {', '.join(self.faults) or 'no drillbit fault'}",
            f"rollbacks    {', '.join(self.rollbacks) or 'none'} (strategy: always)",
            f"recovery     until {s.stability_s:g} s continuously good (at most {s.max_recovery_s:g} s), "
            f"then {s.cooldown_s:g} s cool-down",
        ]
        lines += [f"SLA          {v.requirement:7} {v.text} [{v.metric} {v.op} {v.target:g} {v.unit}]"
                  for v in self.slas.values()]  # fmt: skip
        return lines


def _providers(exp: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(part, where, provider) of every activity with a provider mapping, whatever else is wrong."""
    ssh = exp.get("steady-state-hypothesis")
    parts = [("method", exp.get("method")), ("rollbacks", exp.get("rollbacks")),
             ("steady-state-hypothesis.probes", ssh.get("probes") if isinstance(ssh, dict) else None)]  # fmt: skip
    for part, activities in parts:
        for i, activity in enumerate(activities if isinstance(activities, list) else []):
            provider = activity.get("provider") if isinstance(activity, dict) else None
            if isinstance(provider, dict):
                yield part, f"{part}[{i}].provider", provider


def _activity_problems(provider: dict[str, Any], where: str) -> list[str]:
    if provider.get("type") != "python" or provider.get("module") != faults.__name__:
        return []
    func_name = provider.get("func")
    if not isinstance(func_name, str) or func_name not in faults.__all__ or func_name == "FAULTS":
        return [f"{where}.func: {faults.__name__} has no function {func_name!r}: use one of "
                f"{', '.join(sorted(set(faults.__all__) - {'FAULTS'}))}"]  # fmt: skip
    arguments = provider.get("arguments") or {}
    if not isinstance(arguments, dict):
        return []  # the shape check says so
    return argument_problems(func_name, arguments, f"{where}.arguments")


def _experiment_problems(exp: dict[str, Any]) -> list[str]:
    """Every problem at once: the shape (``drillbit.experiment``), drillbit's rules, then (when the
    shape is sound) chaostoolkit-lib's own validator."""
    shape = experiment_problems(exp)
    problems = list(shape)
    funcs: dict[str, set[Any]] = {"method": set(), "rollbacks": set()}
    for part, where, provider in _providers(exp):
        problems += [p for p in _activity_problems(provider, where) if p not in problems]
        if part in funcs and isinstance(provider.get("func"), str):
            funcs[part].add(provider["func"])
    for fault, revert in NEEDS_ROLLBACK.items():
        if fault in funcs["method"] and revert not in funcs["rollbacks"]:
            problems.append(f"rollbacks: the method calls {fault} but no rollback calls {revert}: add one")
    if shape:
        return problems  # chaostoolkit-lib's validator assumes the shape
    try:
        ensure_experiment_is_valid(exp)
    except ChaosException as err:
        message = " ".join(str(err).split())
        if not any(message in p for p in problems):
            problems.append(f"chaostoolkit: {message}")
    except (TypeError, ValueError, KeyError, AttributeError) as err:  # chaostoolkit-lib choking on a value
        log.debug("chaostoolkit-lib's validator raised on this experiment", exc_info=True)
        problems.append(f"chaostoolkit: the experiment cannot be validated ({type(err).__name__}: {err}): check "
                        "its configuration and secrets values")  # fmt: skip
    return problems


def _settings(exp: dict[str, Any]) -> tuple[DrillSettings | None, list[str]]:
    extensions = exp.get("extensions") or []
    entries = [e for e in extensions if isinstance(e, dict) and e.get("name") == "drillbit"] \
        if isinstance(extensions, list) else []  # fmt: skip
    try:
        return DrillSettings.model_validate(entries[0] if entries else {}), []
    except ValidationError as err:
        return None, [f"extensions[drillbit].{p}" for p in validation_problems(err)]


def load_plan(experiment: Path, *, sla_path: Path | None = None, profile: str | None = None,
              workers: int | None = None, locustfile: str | None = None) -> DrillPlan:  # fmt: skip
    """Validate everything a drill needs; raise one ConfigError listing every problem. ``workers``
    overrides the experiment's generator processes (``processes``: the profile's rate is split among them),
    ``locustfile`` its locustfile (the SLA file's ``locustfiles:`` adds that load's SLAs)."""
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError("--workers", f"{workers} generator processes: give 1 to {MAX_WORKERS} (one per core "
                                       "is the most that helps)")  # fmt: skip
    source = str(experiment)
    exp = load_document(experiment, missing="no such experiment file: pass a path such as experiments/pod-kill.yaml")
    if not isinstance(exp, dict):
        raise ConfigError(source, "an experiment is a mapping (title:, description:, method:, ...)")
    remember_secrets(experiment_secret_values(exp.get("secrets")))  # never echoed in an error line
    problems = _experiment_problems(exp)
    settings, setting_problems = _settings(exp)
    problems += setting_problems
    if settings is not None and profile is not None:
        settings = settings.model_copy(update={"profile": profile})
    if settings is not None and workers is not None:
        settings = settings.model_copy(update={"processes": workers})
    if settings is not None and locustfile is not None:
        try:
            settings = DrillSettings.model_validate({**settings.model_dump(), "locustfile": locustfile})
        except ValidationError as err:
            raise ConfigError("--locustfile", validation_problems(err)) from None
    sources: list[tuple[str, list[str]]] = [(source, problems)]
    if settings is not None:

        try:
            load_profile(settings.profile)
        except ConfigError as err:
            named = "--profile" if profile is not None else f"{source}: extensions[drillbit].profile"
            sources.append((named, [f"{err.source}: {p}" for p in err.problems]))
        try:
            find_locustfile(settings.locustfile)
        except ConfigError as err:
            named = "--locustfile" if locustfile is not None else f"{source}: extensions[drillbit].locustfile"
            sources.append((named, [f"{err.source}: {p}" for p in err.problems]))
    slas: dict[str, Sla] = {}
    sla_source = str(sla_path or "experiments/slas.yaml")
    try:
        slas = slas_for(load_sla_file(sla_path), experiment.stem, sla_source,
                        locustfile=settings.locustfile if settings is not None else None,
                        profile=settings.profile if settings is not None else None)
    except ConfigError as err:
        sources.append((err.source, err.problems))
    else:
        if not slas:
            sources.append((sla_source, [f"no SLA applies to experiment {experiment.stem!r}, so nothing would be "
                                         f"judged: list SLAs under default: or experiments.{experiment.stem}.use"]))
    bad = [(src, ps) for src, ps in sources if ps]
    if bad:
        raise ConfigError(bad[0][0], [p for _, ps in bad[:1] for p in ps] + [
            f"{src}: {p}" for src, ps in bad[1:] for p in ps])  # fmt: skip
    assert settings is not None
    fault_names = [a.get("name", "?") for a in exp.get("method") or []
                   if (a.get("provider") or {}).get("func") in faults.FAULTS]  # fmt: skip
    return DrillPlan(experiment, exp, settings, slas, sla_path, fault_names,
                     [a.get("name", "?") for a in exp.get("rollbacks") or []])  # fmt: skip


def region_problems(plan: DrillPlan, regions: list[str]) -> list[str]:
    """Every fault argument naming a region the target does not have (``regions``: the target's)."""
    problems = []
    for part in ("method", "rollbacks"):
        for i, activity in enumerate(plan.experiment.get(part) or []):
            provider = activity.get("provider") or {}
            ours = provider.get("module") == faults.__name__
            region = (provider.get("arguments") or {}).get("region") if ours else None
            if isinstance(region, str) and "${" not in region and region not in regions:
                problems.append(f"{part}[{i}].provider.arguments.region: unknown region {region!r}: use one of "
                                f"{', '.join(regions)}")  # fmt: skip
    return problems
