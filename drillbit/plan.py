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

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drillbit import faults
from drillbit.errors import ConfigError, validation_problems
from drillbit.sla import Sla, load_sla_file, slas_for

__all__ = ["DrillPlan", "DrillSettings", "load_plan"]

log = logging.getLogger(__name__)

#: lasting faults, and the revert a rollback must call (a fault that heals by itself needs none)
NEEDS_ROLLBACK = {"lose_region": "restore_region"}


class DrillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "drillbit"
    profile: str = "steady"
    locustfile: str = "trader"
    processes: int = Field(default=1, ge=1, le=16)
    baseline_s: float = Field(default=10.0, ge=0, le=3600)
    cooldown_s: float = Field(default=10.0, ge=0, le=3600)
    max_recovery_s: float = Field(default=120.0, gt=0, le=24 * 3600)
    stability_s: float = Field(default=5.0, gt=0, le=600)


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


def _activity_problems(activity: dict[str, Any], where: str) -> list[str]:
    provider = activity.get("provider") or {}
    if provider.get("type") != "python" or provider.get("module") != faults.__name__:
        return []
    func_name = provider.get("func")
    func = getattr(faults, func_name, None) if func_name in faults.__all__ else None
    if func is None:
        return [f"{where}.provider.func: {faults.__name__} has no function {func_name!r}: use one of "
                f"{', '.join(sorted(set(faults.__all__) - {'FAULTS'}))}"]  # fmt: skip
    args = provider.get("arguments") or {}
    try:
        inspect.signature(func).bind(**args)
    except TypeError as err:
        return [f"{where}.provider.arguments: {err}: see {faults.__name__}.{func_name}"]
    return []


def _experiment_problems(exp: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("title", "description", "method"):
        if not exp.get(key):
            problems.append(f"{key}: required: add it")
    if not exp.get("steady-state-hypothesis"):
        problems.append("steady-state-hypothesis: a drill needs one (what 'healthy' means): add it")
    for part in ("method", "rollbacks"):
        for i, activity in enumerate(exp.get(part) or []):
            if isinstance(activity, dict):
                problems += _activity_problems(activity, f"{part}[{i}]")
    funcs = {(a.get("provider") or {}).get("func") for a in exp.get("method") or [] if isinstance(a, dict)}
    reverts = {(a.get("provider") or {}).get("func") for a in exp.get("rollbacks") or [] if isinstance(a, dict)}
    for fault, revert in NEEDS_ROLLBACK.items():
        if fault in funcs and revert not in reverts:
            problems.append(f"rollbacks: the method calls {fault} but no rollback calls {revert}: add one")
    try:
        ensure_experiment_is_valid(exp)
    except ChaosException as err:
        message = str(err).strip().replace("\n", " ")
        if not any(message in p for p in problems):
            problems.append(f"chaostoolkit: {message}")
    return problems


def _settings(exp: dict[str, Any]) -> tuple[DrillSettings | None, list[str]]:
    entries = [e for e in exp.get("extensions") or [] if isinstance(e, dict) and e.get("name") == "drillbit"]
    try:
        return DrillSettings.model_validate(entries[0] if entries else {}), []
    except ValidationError as err:
        return None, [f"extensions[drillbit].{p}" for p in validation_problems(err)]


def load_plan(experiment: Path, *, sla_path: Path | None = None, profile: str | None = None) -> DrillPlan:
    """Validate everything a drill needs; raise one ConfigError listing every problem."""
    if not experiment.exists():
        raise ConfigError(str(experiment), "no such experiment file: pass a path such as experiments/pod-kill.yaml")
    try:
        exp = load_experiment(str(experiment))
    except ChaosException as err:
        raise ConfigError(str(experiment), f"cannot load the experiment: {err}: fix the YAML/JSON") from None
    if not isinstance(exp, dict):
        raise ConfigError(str(experiment), "an experiment is a mapping (title:, description:, method:, ...)")
    shape = [f"{part}[{i}]: an activity is a mapping (type:, name:, provider:)"
             for part in ("method", "rollbacks") for i, a in enumerate(exp.get(part) or []) if not isinstance(a, dict)]
    if not isinstance(exp.get("method") or [], list) or not isinstance(exp.get("rollbacks") or [], list):
        shape.append("method and rollbacks are lists of activities")
    if shape:
        raise ConfigError(str(experiment), shape)
    problems = _experiment_problems(exp)
    settings, setting_problems = _settings(exp)
    problems += setting_problems
    if settings is not None and profile is not None:
        settings = settings.model_copy(update={"profile": profile})
    sources: list[tuple[str, list[str]]] = [(str(experiment), problems)]
    if settings is not None:
        from loadtests.profiles import load_profile

        try:
            load_profile(settings.profile)
        except ConfigError as err:
            sources.append(("--profile", [f"{err.source}: {p}" for p in err.problems]))
    slas: dict[str, Sla] = {}
    try:
        slas = slas_for(load_sla_file(sla_path), experiment.stem, str(sla_path or "experiments/slas.yaml"))
    except ConfigError as err:
        sources.append((err.source, err.problems))
    bad = [(src, ps) for src, ps in sources if ps]
    if bad:
        raise ConfigError(bad[0][0], [p for _, ps in bad[:1] for p in ps] + [
            f"{src}: {p}" for src, ps in bad[1:] for p in ps])  # fmt: skip
    assert settings is not None
    fault_names = [a.get("name", "?") for a in exp.get("method") or []
                   if (a.get("provider") or {}).get("func") in faults.FAULTS]  # fmt: skip
    return DrillPlan(experiment, exp, settings, slas, sla_path, fault_names,
                     [a.get("name", "?") for a in exp.get("rollbacks") or []])  # fmt: skip
