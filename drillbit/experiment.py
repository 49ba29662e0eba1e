"""The shape of a Chaos Toolkit experiment as drillbit reads it, validated at the edge.

Only what drillbit (and chaostoolkit-lib's own validator) rely on is checked here; every other
Chaos Toolkit field passes through untouched (``extra="allow"``). The arguments of every portable
fault and probe in ``drillbit.faults`` have a model of their own (type, range, allowed choices),
so ``count: "one"``, ``percent: 250`` or ``mode: nuke-it`` are refused before a dry run, not in
the middle of a drill. A Chaos Toolkit substitution (``"${name}"``) is left for run time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from drillbit.core.errors import validation_problems

__all__ = [
    "FAULT_ARGUMENTS",
    "Activity",
    "Experiment",
    "argument_problems",
    "experiment_problems",
    "outside_project",
]

#: a finite number of seconds, at most a day
Seconds = Annotated[float, Field(ge=0, le=24 * 3600, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, le=24 * 3600, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
_TEMPLATE = re.compile(r"\$\{[^}]*\}")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pauses(_Strict):
    before: Seconds = 0
    after: Seconds = 0


class Provider(_Loose):
    type: Literal["python", "process", "http"]
    module: Name | None = None
    func: Name | None = None
    arguments: dict[str, Any] | None = None
    path: Name | None = None
    url: Name | None = None

    @model_validator(mode="after")
    def _what_it_needs(self) -> Provider:
        needs = {"python": ("module", "func"), "process": ("path",), "http": ("url",)}[self.type]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type} provider needs {' and '.join(missing)}: add it")
        return self


class Activity(_Loose):
    """An action or a probe, or a reference (``ref: name``) to one defined elsewhere."""

    ref: Name | None = None
    type: Literal["action", "probe"] | None = None
    name: Name | None = None
    provider: Provider | None = None
    pauses: Pauses | None = None
    background: bool = False

    @model_validator(mode="after")
    def _complete(self) -> Activity:
        if self.ref is None:
            missing = [f for f in ("type", "name", "provider") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"an activity needs {', '.join(missing)} (or is a ref: NAME): add it")
        return self


class Hypothesis(_Loose):
    title: Name
    probes: list[Activity] = Field(default_factory=list)


class EnvReference(_Loose):
    """A configuration or secret value read from the environment at run time."""

    type: Literal["env"]
    key: Name
    env_var_type: Literal["str", "string", "int", "integer", "float", "number", "bytes", "bool", "json"] | None = None


def _env_reference_problems(block: dict[str, Any], where: str) -> list[str]:
    problems = []
    for name, value in block.items():
        if isinstance(value, dict) and value.get("type") == "env":
            try:
                EnvReference.model_validate(value)
            except ValidationError as err:
                problems += [f"{where}.{name}.{p}" for p in validation_problems(err)]
    return problems


class Extension(_Loose):
    name: Name


class Experiment(_Loose):
    title: Name
    description: Name
    tags: list[str] = Field(default_factory=list)
    configuration: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    controls: list[dict[str, Any]] = Field(default_factory=list)
    extensions: list[Extension] = Field(default_factory=list)
    steady_state_hypothesis: Hypothesis = Field(alias="steady-state-hypothesis")
    method: list[Activity] = Field(min_length=1)
    rollbacks: list[Activity] = Field(default_factory=list)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _env_references(self) -> Experiment:
        problems = _env_reference_problems(self.configuration, "configuration")
        for scope, secrets in self.secrets.items():
            problems += _env_reference_problems(secrets, f"secrets.{scope}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# -- the arguments of drillbit.faults --------------------------------------------------------------


class KillReplicas(_Strict):
    count: StrictInt | None = Field(default=None, ge=1, le=10_000)
    percent: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    region: Name | None = None

    @model_validator(mode="after")
    def _one_amount(self) -> KillReplicas:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give count (replicas, >= 1) or percent (0 < p <= 100), exactly one")
        return self


class Region(_Strict):
    region: Name


class FailOver(_Strict):
    # kill-node, kill-postgres, switchover: the sandbox's; failover, global, global-unplanned: Aurora's (aws)
    mode: Literal["kill-node", "kill-postgres", "switchover", "failover", "global", "global-unplanned"] = "kill-node"


class RollOut(_Strict):
    version: Name = "auto"
    max_unavailable: StrictInt | None = Field(default=None, ge=1, le=1000)  # default: the target's strategy


class SpikeLoad(_Strict):
    rate: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    duration: PositiveSeconds
    locustfile: Name = "trader"
    max_in_flight: StrictInt = Field(default=400, ge=1, le=100_000)


class AwaitService(_Strict):
    timeout_s: PositiveSeconds = 300.0
    stable_s: PositiveSeconds = 5.0


class NoArguments(_Strict):
    pass


class SwitchTraffic(_Strict):
    to: Name | None = None  # the colour; default: the idle one


#: drillbit.faults function -> the model of its arguments (``configuration`` is Chaos Toolkit's)
FAULT_ARGUMENTS: dict[str, type[BaseModel]] = {
    "kill_replicas": KillReplicas,
    "lose_region": Region,
    "restore_region": Region,
    "fail_over_database": FailOver,
    "roll_out": RollOut,
    "spike_load": SpikeLoad,
    "await_service": AwaitService,
    "switch_traffic": SwitchTraffic,
    "switch_traffic_back": NoArguments,
    "heal_target": NoArguments,
    "replicas": NoArguments,
    "primary_region": NoArguments,
    "service_ready": NoArguments,
    "target_whole": NoArguments,
}


def _templated(value: Any) -> bool:
    return isinstance(value, str) and _TEMPLATE.search(value) is not None


def argument_problems(func: str, arguments: dict[str, Any], where: str) -> list[str]:
    """Every problem with the arguments of ``drillbit.faults.<func>`` (names, types, ranges, choices)."""
    model = FAULT_ARGUMENTS.get(func)
    if model is None:
        return []
    templated = {k for k, v in arguments.items() if _templated(v)}
    given = {k: v for k, v in arguments.items() if k not in templated and k != "configuration"}
    try:
        model.model_validate(given)
    except ValidationError as err:
        return [f"{where}.{p}" if e["loc"] else f"{where}: {p}"
                for e, p in zip(err.errors(), validation_problems(err), strict=True)
                if not (e["loc"] and e["loc"][0] in templated)]  # fmt: skip
    return []


def outside_project(value: str, root: Path) -> bool:
    """True when ``value`` is a path (not a shipped name) that leads outside ``root``."""
    if "/" not in value and "\\" not in value and not value.startswith("."):
        return False  # a shipped name: trader, steady, ...
    path = Path(value)
    resolved = (path if path.is_absolute() else root / path).resolve()
    try:
        resolved.relative_to(root.resolve())
    except ValueError:
        return True
    return False


def experiment_problems(data: dict[str, Any]) -> list[str]:
    """Every shape problem of an experiment document (empty when drillbit can read it)."""
    try:
        Experiment.model_validate(data)
    except ValidationError as err:
        return validation_problems(err)
    return []
