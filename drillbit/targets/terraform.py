"""The ``terraform`` target kind: an environment Terraform provisions, drilled through the kind its
outputs configure.

drill.yaml names the Terraform root and the kind of target it makes::

    targets:
      tf-sandbox: {kind: terraform, root: infra/terraform/sandbox, target: sandbox}

``root`` (and ``var_file``) are relative to the drill project. ``vars`` sets the root's variables;
drillbit itself sets those of them the root declares among ``state_dir`` (where the environment
keeps its own state: ``<state dir>/terraform/<name>/env``), ``drill`` (how to run this drillbit:
``[python, -m, drillbit.cli]``) and ``topology`` (the project's sandbox topology). ``outputs`` maps
a field of the inner target to an output (``{context: kube_contexts.primary}``); a field with the
name of an output is taken from it without one.

Each environment has its own Terraform state and working directory under
``<state dir>/terraform/<name>/`` (``terraform.tfstate``, ``data/`` as ``TF_DATA_DIR``, saved plans
and logs), never in the repository. ``up``: ``init``, ``plan -out``, ``apply`` of that plan when it
changes anything, then ``terraform output -json`` into the inner target's fields, and the inner
target attached and checked up. ``down``: ``destroy``. ``drift``: ``plan -detailed-exitcode``, the
changed resources named (``drill env drift``: exit 0 in sync, 1 drifted). The target's fingerprint
is the inner target's plus the state's serial and lineage and the plan's digest (sha256 of the
resource and output changes of ``terraform show -json`` of a saved plan: the same state and
configuration give the same digest). Every drill operation is the inner target's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drillbit.core.errors import ConfigError, DrillError, EnvironmentFailure, validation_problems
from drillbit.core.project import current as current_project
from drillbit.targets.base import Endpoints, Target, TargetKind

__all__ = [
    "DRILL_COMMAND",
    "TERRAFORM_ENV",
    "TerraformKind",
    "TerraformSpec",
    "TerraformTarget",
    "Workspace",
    "changes_of",
    "inner_fields",
    "plan_digest",
    "terraform_outputs",
]

Report = Callable[[str], None]

TERRAFORM_ENV = "DRILL_TERRAFORM"  # the terraform binary (as for `python -m drillbit.manifests.terraform`)
#: the root's variables drillbit sets itself when the root declares them
MANAGED_VARS = ("state_dir", "drill", "topology")
RESERVED_VARS = ("state_dir", "drill")  # drillbit's own: `vars` may not set them
PLAN_TIMEOUT_S = 300.0
APPLY_TIMEOUT_S = 900.0  # bringing an environment up or down
#: how the root's provisioners run this drillbit (its ``drill`` variable)
DRILL_COMMAND = [sys.executable, "-m", "drillbit.cli"]
REPLACE = {("delete", "create"): "replace", ("create", "delete"): "replace"}
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_DECLARED = re.compile(r'^\s*variable\s+"([^"]+)"', re.MULTILINE)
_WHERE = re.compile(r"^\s*on (\S+) line (\d+)")

VarValue = str | int | float | bool | list[Any] | dict[str, Any]


class TerraformSpec(BaseModel):
    """A terraform target's fields in drill.yaml."""

    model_config = ConfigDict(extra="forbid")
    root: str = Field(min_length=1)  # the Terraform root module, relative to the drill project
    target: str = Field(min_length=1)  # the kind of target its outputs configure (sandbox, kubernetes, ...)
    var_file: str | None = Field(default=None, min_length=1)  # a .tfvars file, relative to the drill project
    vars: dict[str, VarValue] = Field(default_factory=dict)  # the root's variables (-var NAME=VALUE)
    outputs: dict[str, str] = Field(default_factory=dict)  # inner target field -> output (a.b: a map's key)
    state_dir: str | None = Field(default=None, min_length=1)  # default: .drill (or $DRILL_STATE_DIR)

    @field_validator("target")
    @classmethod
    def _a_kind(cls, v: str) -> str:
        from drillbit.targets import registered_kinds  # the registry, not a cycle at import time

        kinds = [k for k in registered_kinds() if k != TerraformKind.name]
        if v not in kinds:
            raise ValueError(f"unknown kind {v!r} for what the root makes: use one of {', '.join(kinds)}")
        return v

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, VarValue]) -> dict[str, VarValue]:
        for name in v:
            if not _VAR_NAME.match(name):
                raise ValueError(f"{name!r} is not a Terraform variable name")
            if name in RESERVED_VARS:
                raise ValueError(f"{name} is set by drillbit (the environment's own state, this drillbit): remove it")
        return v

    @field_validator("outputs")
    @classmethod
    def _output_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for field, path in v.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{field}: {path!r} is not an output name (NAME or NAME.KEY)")
        return v


# --- where an environment lives, and the command lines ------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """One environment's Terraform: its root, and its own state under ``<state dir>/terraform/<name>/``."""

    name: str
    root: Path
    dir: Path
    var_file: Path | None = None

    @classmethod
    def of(cls, name: str, spec: TerraformSpec, state_dir: Path | str | None) -> Workspace:
        base = Path(state_dir or spec.state_dir or os.environ.get("DRILL_STATE_DIR") or ".drill").resolve()
        return cls(name, _project_path(spec.root), base / "terraform" / name,
                   _project_path(spec.var_file) if spec.var_file else None)  # fmt: skip

    @property
    def base(self) -> Path:
        """The drill state directory this environment is under (what the faults attach it from again)."""
        return self.dir.parent.parent

    @property
    def state_file(self) -> Path:
        return self.dir / "terraform.tfstate"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"  # TF_DATA_DIR: init's backend settings and providers, per environment

    @property
    def env_dir(self) -> Path:
        """The state directory of what the root makes (its ``state_dir`` variable)."""
        return self.dir / "env"

    def plan_file(self, purpose: str) -> Path:
        return self.dir / "plans" / f"{purpose}.tfplan"

    def log_file(self, command: str) -> Path:
        return self.dir / "logs" / f"{command}.log"

    def declared(self) -> set[str]:
        """The root's variables (``variable "NAME"`` blocks of its ``*.tf`` files)."""
        return {m for f in sorted(self.root.glob("*.tf")) for m in _DECLARED.findall(f.read_text(encoding="utf-8"))}

    def var_args(self, spec: TerraformSpec) -> list[str]:
        """``-var-file`` and ``-var`` arguments: drillbit's own variables (those the root declares), then
        drill.yaml's."""
        declared = self.declared()
        values: dict[str, VarValue] = {}
        if "state_dir" in declared:
            values["state_dir"] = str(self.env_dir)
        if "drill" in declared:
            values["drill"] = list(DRILL_COMMAND)
        if "topology" in declared:
            values["topology"] = str(current_project().find("infra", "sandbox", "topology.yaml"))
        values.update(spec.vars)
        args = [f"-var-file={self.var_file}"] if self.var_file else []
        for name, value in values.items():
            shown = value if isinstance(value, str) else json.dumps(value)  # HCL accepts JSON for the rest
            args += ["-var", f"{name}={shown}"]
        return args

    def init_cmd(self, tf: str) -> list[str]:
        return [tf, f"-chdir={self.root}", "init", "-input=false", "-no-color", "-reconfigure",
                f"-backend-config=path={self.state_file}"]  # fmt: skip

    def plan_cmd(self, tf: str, spec: TerraformSpec, out: Path, *, destroy: bool = False) -> list[str]:
        return [tf, f"-chdir={self.root}", "plan", "-input=false", "-no-color", "-lock-timeout=60s",
                "-detailed-exitcode", f"-out={out}", *(["-destroy"] if destroy else []),
                *self.var_args(spec)]  # fmt: skip

    def apply_cmd(self, tf: str, plan: Path) -> list[str]:
        return [tf, f"-chdir={self.root}", "apply", "-input=false", "-no-color", "-lock-timeout=60s",
                "-auto-approve", str(plan)]  # fmt: skip

    def show_cmd(self, tf: str, plan: Path) -> list[str]:
        return [tf, f"-chdir={self.root}", "show", "-json", "-no-color", str(plan)]

    def output_cmd(self, tf: str) -> list[str]:
        return [tf, f"-chdir={self.root}", "output", "-json", "-no-color"]

    def env(self) -> dict[str, str]:
        """terraform's environment: this environment's data dir, no prompts, no checkpoint call home, the
        drill project the provisioners' drill commands use."""
        env = {**os.environ, "TF_DATA_DIR": str(self.data_dir), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0",
               "CHECKPOINT_DISABLE": "1", "DRILL_PROJECT": str(current_project().root)}  # fmt: skip
        cli_config = env.get("TF_CLI_CONFIG_FILE")
        if cli_config and not Path(cli_config).is_file():
            del env["TF_CLI_CONFIG_FILE"]  # a missing one is a warning on every command, nothing else
        return env


def _project_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p.resolve() if p.is_absolute() else current_project().find(*p.parts).resolve()


def _terraform() -> str:
    program = os.environ.get(TERRAFORM_ENV) or shutil.which("terraform")
    if not program:
        raise EnvironmentFailure(f"terraform is not on PATH: install terraform >= 1.5 or set ${TERRAFORM_ENV}")
    return program


# --- running terraform ----------------------------------------------------------------------------------


def _problem(output: str) -> tuple[str, str, str | None]:
    """terraform's first error: its summary, its detail as one line, and where it points (``file:line``)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        text = line.strip().lstrip("│╷").strip()
        if not text.startswith("Error: "):
            continue
        where: str | None = None
        detail: list[str] = []
        for follow in lines[i + 1 : i + 60]:
            t = follow.strip()
            if t.startswith("Error: ") or (not t and detail):
                break
            if m := _WHERE.match(t):
                where = f"{m.group(1)}:{m.group(2)}"
            elif t and t[0] not in "│├╵╷" and not re.match(r"^\d+:", t) and not t.startswith("with "):
                detail.append(t)  # the explanation, after the source excerpt
        return text.removeprefix("Error: ").strip(), " ".join(detail), where
    tail = [line.strip() for line in lines if line.strip()]
    return (tail[-1] if tail else "no output"), "", None


#: errors about the values given to the root's variables (drill.yaml's vars, the var file)
_VALUE_ERRORS = ("Invalid value for variable", "Value for undeclared variable", "No value for required variable",
                 "Invalid value for input variable", "Failed to read variables file")  # fmt: skip


def _run(ws: Workspace, cmd: list[str], *, log: str, timeout: float, ok: tuple[int, ...] = (0,),
         stream: Report | None = None, source: str = "drill.yaml") -> tuple[int, str]:  # fmt: skip
    """Run terraform in the environment's workspace, its output kept in the environment's log. An exit
    not in ``ok``: a ConfigError when terraform faults the values given to the root's variables (naming
    drill.yaml's field) or the root's own files (naming file and line), else an EnvironmentFailure;
    each one line, naming the log."""
    ws.log_file(log).parent.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    try:
        with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=ws.env(), cwd=ws.root) as proc, \
                open(ws.log_file(log), "a", encoding="utf-8") as kept:  # fmt: skip
            kept.write(f"$ {' '.join(cmd)}\n")
            assert proc.stdout is not None
            for line in proc.stdout:
                out.append(line)
                kept.write(line)
                if stream is not None and line.strip():
                    stream(f"terraform: {line.rstrip()}")
            code = proc.wait(timeout=timeout)
    except OSError as err:
        raise EnvironmentFailure(f"terraform ({cmd[0]}) did not run: {err}") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentFailure(f"terraform {log} took over {timeout:.0f} s: see {ws.log_file(log)}") from None
    text = "".join(out)
    if code in ok:
        return code, text
    summary, detail, where = _problem(text)
    said = f"{summary}: {detail}" if detail else summary
    if summary.startswith(_VALUE_ERRORS):
        field = "var_file" if ws.var_file is not None and "variables file" in summary else "vars"
        raise ConfigError(source, f"targets.{ws.name}.{field}: {said} (terraform {log} in {ws.root})")
    if where is not None:
        file, line = where.rsplit(":", 1)
        path = (ws.root / file).resolve()
        if path.parent == ws.root:
            raise ConfigError(f"{path}:{line}", f"{said}: fix the Terraform configuration")
    raise EnvironmentFailure(f"terraform {log} in {ws.root} failed: {said} (see {ws.log_file(log)})")


def terraform_outputs(raw: str) -> dict[str, Any]:
    """``terraform output -json``: each output's value by name."""
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise EnvironmentFailure(f"terraform output -json printed no JSON: {raw.strip()[:200]}") from None
    if not isinstance(data, dict):
        raise EnvironmentFailure("terraform output -json printed no mapping of outputs")
    return {str(k): (v.get("value") if isinstance(v, dict) else None) for k, v in data.items()}


def _dig(outputs: dict[str, Any], path: str) -> tuple[bool, Any]:
    first, *rest = path.split(".")
    if first not in outputs:
        return False, None
    value = outputs[first]
    for key in rest:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def inner_fields(name: str, spec: TerraformSpec, outputs: dict[str, Any], model: type[BaseModel],
                 source: str = "drill.yaml") -> BaseModel:  # fmt: skip
    """The inner target's spec from the outputs: each field of ``model`` named by an output, or mapped to
    one by ``outputs:`` (a null output leaves the field's default)."""
    mapping = {field: field for field in model.model_fields if field in outputs} | spec.outputs
    problems, fields = [], {}
    for field, path in mapping.items():
        if field not in model.model_fields:
            problems.append(f"targets.{name}.outputs.{field}: a {spec.target} target has no such field (has: "
                            f"{', '.join(model.model_fields)})")  # fmt: skip
            continue
        found, value = _dig(outputs, path)
        if not found:
            problems.append(f"targets.{name}.outputs.{field}: the root has no output {path!r} (has: "
                            f"{', '.join(sorted(outputs)) or 'none: is it applied?'})")  # fmt: skip
        elif value is not None:
            fields[field] = value
    if not problems:
        try:
            return model.model_validate(fields)
        except ValidationError as err:
            problems += [f"targets.{name}.outputs.{p} (from {spec.root}'s outputs)" for p in validation_problems(err)]
    raise ConfigError(source, problems)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def plan_digest(shown: dict[str, Any]) -> str:
    """sha256 of a saved plan's resource and output changes (``terraform show -json``), without its
    timestamp: the same state and configuration give the same digest."""
    return hashlib.sha256(_canonical({"resource_changes": shown.get("resource_changes") or [],
                                      "output_changes": shown.get("output_changes") or {}})).hexdigest()  # fmt: skip


def _changed_paths(before: Any, after: Any, unknown: Any, prefix: str = "") -> Iterator[str]:
    """The attribute paths whose value changes (or becomes known only after apply)."""
    if unknown is True:
        yield prefix or "(all)"
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            sub_unknown = unknown.get(key) if isinstance(unknown, dict) else None
            path = f"{prefix}.{key}" if prefix else key
            yield from _changed_paths(before.get(key), after.get(key), sub_unknown, path)
    elif before != after:
        yield prefix or "(all)"


def changes_of(shown: dict[str, Any]) -> list[dict[str, Any]]:
    """Each resource a saved plan changes: address, actions and the attributes that change; the failing
    checks' messages (the root's own explanation of what it found) go with every change."""
    problems = [p.get("message", "") for c in shown.get("checks") or [] if c.get("status") == "fail"
                for i in c.get("instances") or [] for p in i.get("problems") or []]  # fmt: skip
    out = []
    for rc in shown.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions = list(change.get("actions") or [])
        if actions in (["no-op"], ["read"]):
            continue
        action = REPLACE.get(tuple(actions), "+".join(actions))
        if rc.get("action_reason") == "replace_because_tainted":
            action += " (tainted)"
        every = _changed_paths(change.get("before"), change.get("after"), change.get("after_unknown"))
        paths = [p for p in every if p.split(".")[0] not in ("id", "output", "(all)")]  # computed, or all of it
        out.append({"address": rc.get("address"), "action": action, "changed": paths, "reasons": problems})
    return out


@dataclass(frozen=True)
class Plan:
    changed: bool
    shown: dict[str, Any]

    @property
    def digest(self) -> str:
        return plan_digest(self.shown)

    @property
    def changes(self) -> list[dict[str, Any]]:
        return changes_of(self.shown)

    @property
    def output_changes(self) -> list[str]:
        return sorted(k for k, v in (self.shown.get("output_changes") or {}).items()
                      if (v.get("actions") or ["no-op"]) != ["no-op"])  # fmt: skip


def _plan(ws: Workspace, spec: TerraformSpec, purpose: str, *, destroy: bool = False,
          source: str = "drill.yaml") -> Plan:  # fmt: skip
    tf = _terraform()
    out = ws.plan_file(purpose)
    out.parent.mkdir(parents=True, exist_ok=True)
    code, _ = _run(ws, ws.plan_cmd(tf, spec, out, destroy=destroy), log="plan", timeout=PLAN_TIMEOUT_S, ok=(0, 2),
                   source=source)  # fmt: skip
    _, shown = _run(ws, ws.show_cmd(tf, out), log="show", timeout=PLAN_TIMEOUT_S)
    try:
        data = json.loads(shown)
    except json.JSONDecodeError:
        raise EnvironmentFailure(f"terraform show -json printed no JSON (see {ws.log_file('show')})") from None
    return Plan(code == 2, data)


def _init(ws: Workspace) -> None:
    if not ws.root.is_dir() or not any(ws.root.glob("*.tf")):
        raise ConfigError("drill.yaml", f"targets.{ws.name}.root: {ws.root} is not a Terraform root (no *.tf "
                                        "files): fix the path (relative to the drill project)")  # fmt: skip
    for d in (ws.dir, ws.data_dir, ws.env_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    _run(ws, ws.init_cmd(_terraform()), log="init", timeout=PLAN_TIMEOUT_S)


def _state(ws: Workspace) -> dict[str, Any]:
    """The environment's Terraform state (serial, lineage, resources), or {} before the first apply."""
    try:
        data = json.loads(ws.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise EnvironmentFailure(f"the Terraform state {ws.state_file} is unreadable: {err}") from None
    return data if isinstance(data, dict) else {}


def _managed(state: dict[str, Any]) -> list[str]:
    return [f"{r.get('type')}.{r.get('name')}" for r in state.get("resources") or [] if r.get("mode") == "managed"
            and r.get("instances")]  # fmt: skip


# --- the target -------------------------------------------------------------------------------------------


class TerraformTarget:
    """What the root made, as its inner target (every drill operation is the inner target's); its
    ``state_dir`` is the drill state directory the environment lives under, so a fault resolves this
    target again from it, and its fingerprint adds the Terraform state and plan."""

    kind = "terraform"

    def __init__(self, name: str, spec: TerraformSpec, ws: Workspace, inner: Target, outputs: dict[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.ws = ws
        self.inner = inner
        self.outputs = outputs

    def __getattr__(self, attr: str) -> Any:  # what else the inner target offers (a traffic switch, ...)
        if attr.startswith("_") or attr in ("inner", "spec", "ws", "outputs", "name"):
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def state_dir(self) -> str:
        return str(self.ws.base)

    def endpoints(self) -> Endpoints:
        return self.inner.endpoints()

    def activity_scope(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.activity_scope()

    def fingerprint(self) -> dict[str, Any]:
        return {**self.inner.fingerprint(), "terraform": terraform_fingerprint(self.ws, self.spec)}

    def ready(self) -> bool:
        return self.inner.ready()

    def replicas(self) -> dict[str, dict[str, Any]]:
        return self.inner.replicas()

    def primary_region(self) -> str | None:
        return self.inner.primary_region()

    def kill_replicas(self, count: int | None = None, percent: float | None = None,
                      region: str | None = None) -> dict[str, Any]:  # fmt: skip
        return self.inner.kill_replicas(count, percent=percent, region=region)

    def lose_region(self, region: str) -> dict[str, Any]:
        return self.inner.lose_region(region)

    def restore_region(self, region: str) -> dict[str, Any]:
        return self.inner.restore_region(region)

    def fail_over_database(self, mode: str = "kill-node") -> dict[str, Any]:
        return self.inner.fail_over_database(mode)

    def roll_out(self, version: str, max_unavailable: int | None = None) -> dict[str, Any]:
        return self.inner.roll_out(version, max_unavailable=max_unavailable)

    def heal(self) -> dict[str, Any]:
        return self.inner.heal()

    def whole(self) -> bool:
        return self.inner.whole()

    def settled(self) -> bool:
        return self.inner.settled()


def terraform_fingerprint(ws: Workspace, spec: TerraformSpec) -> dict[str, Any]:
    """The Terraform side of what was drilled: root, state serial and lineage, and a fresh plan's digest
    (and whether that plan found drift)."""
    state = _state(ws)
    plan = _plan(ws, spec, "fingerprint")
    return {"root": str(ws.root), "state": str(ws.state_file), "state_serial": state.get("serial"),
            "state_lineage": state.get("lineage"), "terraform_version": state.get("terraform_version"),
            "plan_digest": plan.digest, "drift": plan.changed,
            "changed": [c["address"] for c in plan.changes] + [f"output.{o}" for o in plan.output_changes]}  # fmt: skip


class TerraformKind:
    """Registered in the ``drillbit.targets`` entry points as ``terraform``."""

    name = "terraform"
    spec_model = TerraformSpec

    def __init__(self) -> None:
        self._source = "drill.yaml"

    def _inner_kind(self, spec: TerraformSpec) -> TargetKind:
        from drillbit.targets import load_kind

        return load_kind(spec.target)

    def check_identity(self, name: str, spec: TerraformSpec, source: str) -> None:
        """The root, the var file and the inner kind are what drill.yaml names (the inner target's own
        identity is checked once the outputs configure it)."""
        self._source = source
        ws = Workspace.of(name, spec, None)
        if not ws.root.is_dir() or not any(ws.root.glob("*.tf")):
            raise ConfigError(source, f"targets.{name}.root: {spec.root} is not a Terraform root (no directory "
                                      "with *.tf files there): give the root module's path, relative to the drill "
                                      "project")  # fmt: skip
        if ws.var_file is not None and not ws.var_file.is_file():
            raise ConfigError(source, f"targets.{name}.var_file: no such file {spec.var_file}: give a .tfvars file, "
                                      "relative to the drill project")  # fmt: skip

    def _outputs(self, ws: Workspace) -> dict[str, Any]:
        if not ws.state_file.exists():
            return {}
        _, raw = _run(ws, ws.output_cmd(_terraform()), log="output", timeout=PLAN_TIMEOUT_S)
        return terraform_outputs(raw)

    def _attach(self, name: str, spec: TerraformSpec, ws: Workspace) -> TerraformTarget:
        outputs = self._outputs(ws)
        if not outputs or not _managed(_state(ws)):
            raise EnvironmentFailure(f"{name} is not up (no Terraform state with resources in {ws.dir}): run "
                                     f"`drill env up --env {name}`")  # fmt: skip
        kind = self._inner_kind(spec)
        inner_spec = inner_fields(name, spec, outputs, kind.spec_model, self._source)
        kind.check_identity(name, inner_spec, self._source)
        try:
            inner = kind.attach(name, inner_spec, None)
        except EnvironmentFailure as err:
            raise EnvironmentFailure(f"{name}: what Terraform made is not there ({err}): see `drill env drift --env "
                                     f"{name}`, then `drill env up --env {name}` repairs it") from None  # fmt: skip
        return TerraformTarget(name, spec, ws, inner, outputs)

    def attach(self, name: str, spec: TerraformSpec, state_dir: Path | str | None) -> TerraformTarget:
        return self._attach(name, spec, Workspace.of(name, spec, state_dir))

    def is_up(self, name: str, spec: TerraformSpec, state_dir: Path | str | None) -> bool:
        ws = Workspace.of(name, spec, state_dir)
        if not _managed(_state(ws)):
            return False
        try:
            outputs = self._outputs(ws)
            kind = self._inner_kind(spec)
            inner_spec = inner_fields(name, spec, outputs, kind.spec_model, self._source)
            return kind.is_up(name, inner_spec, None)
        except DrillError:
            return False

    def up(self, name: str, spec: TerraformSpec, state_dir: Path | str | None, report: Report) -> TerraformTarget:
        ws = Workspace.of(name, spec, state_dir)
        _init(ws)
        plan = _plan(ws, spec, "up", source=self._source)
        if plan.changed:
            summary = ", ".join(f"{c['address']} {c['action']}" for c in plan.changes) or "outputs only"
            report(f"{name}: terraform apply in {ws.root} ({summary}; state {ws.state_file})")
            _run(ws, ws.apply_cmd(_terraform(), ws.plan_file("up")), log="apply", timeout=APPLY_TIMEOUT_S,
                 stream=report)  # fmt: skip
        else:
            report(f"{name}: Terraform finds nothing to change ({ws.state_file})")
        return self._attach(name, spec, ws)

    def down(self, name: str, spec: TerraformSpec, state_dir: Path | str | None, report: Report) -> None:
        ws = Workspace.of(name, spec, state_dir)
        if not _managed(_state(ws)):
            report(f"{name}: nothing in its Terraform state ({ws.state_file}): nothing to destroy")
            return
        _init(ws)
        plan = _plan(ws, spec, "down", destroy=True, source=self._source)
        report(f"{name}: terraform destroy in {ws.root} ({', '.join(c['address'] for c in plan.changes)})")
        _run(ws, ws.apply_cmd(_terraform(), ws.plan_file("down")), log="destroy", timeout=APPLY_TIMEOUT_S,
             stream=report)  # fmt: skip
        left = _managed(_state(ws))
        if left:
            raise EnvironmentFailure(f"{name}: terraform destroy left {', '.join(left)} in {ws.state_file}")

    def status(self, name: str, spec: TerraformSpec, state_dir: Path | str | None) -> dict[str, Any]:
        ws = Workspace.of(name, spec, state_dir)
        state = _state(ws)
        facts: dict[str, Any] = {"root": str(ws.root), "state": str(ws.state_file), "state_serial": state.get("serial"),
                                 "resources": _managed(state)}  # fmt: skip
        if not facts["resources"]:
            return {"up": False, **facts}
        target = self._attach(name, spec, ws)  # not there: exit 4 and what to run
        kind = self._inner_kind(spec)
        inner_spec = inner_fields(name, spec, target.outputs, kind.spec_model, self._source)
        return {**facts, "outputs": target.outputs, "inner": {"kind": spec.target,
                **kind.status(name, inner_spec, None)}, "up": True}  # fmt: skip

    def drift(self, name: str, spec: TerraformSpec, state_dir: Path | str | None, report: Report) -> dict[str, Any]:
        """``terraform plan -detailed-exitcode`` against the environment's state: ``drift`` true when the
        plan would change anything (each change named through ``report``)."""
        ws = Workspace.of(name, spec, state_dir)
        _init(ws)
        state = _state(ws)
        plan = _plan(ws, spec, "drift", source=self._source)
        changes = plan.changes
        for c in changes:
            what = f" ({', '.join(c['changed'])})" if c["changed"] else ""
            why = f": {'; '.join(c['reasons'])}" if c["reasons"] else ""
            report(f"drift: {c['address']} must {c['action']}{what}{why}")
        if plan.changed and not changes:
            report(f"drift: outputs change: {', '.join(plan.output_changes)}")
        if not plan.changed:
            report(f"{name}: no drift (Terraform state serial {state.get('serial')}, {ws.state_file})")
        return {"target": name, "drift": plan.changed, "changes": changes, "output_changes": plan.output_changes,
                "state_serial": state.get("serial"), "state_lineage": state.get("lineage"),
                "plan_digest": plan.digest, "root": str(ws.root), "state": str(ws.state_file)}  # fmt: skip
