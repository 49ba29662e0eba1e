"""The terraform target kind: drill.yaml's fields (every problem one line naming drill.yaml and the
field), the terraform command lines, the outputs read into the inner target, and the shipped sandbox
root driven by real terraform (offline: no provider is downloaded) with a stand-in for `drill env
up|down` that writes only the sandbox's state file, so the lifecycle and drift detection run in
seconds: a sandbox brought down, replaced or killed by hand, or a topology edited, is drift; the
repair is applied and the next plan is clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.cli import main
from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets import load_targets, registered_kinds, resolve
from drillbit.targets import terraform as tfk
from drillbit.targets.sandbox.driver import SandboxSpec, SandboxTarget
from drillbit.targets.terraform import TerraformKind, TerraformSpec, TerraformTarget, Workspace

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_ROOT = ROOT / "infra" / "terraform" / "sandbox"
STAGING_ROOT = ROOT / "infra" / "terraform" / "envs" / "staging"
needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")

# `drill env up|down --env sandbox --state-dir DIR [--topology T]`, as far as the root can tell: the
# sandbox's state file (<DIR>/sandbox/state.json) and what `drill env up` prints
FAKE_DRILL = r"""
import json, os, secrets, sys
from collections.abc import Iterator
from pathlib import Path
args = sys.argv[1:]
state = Path(args[args.index("--state-dir") + 1]) / "sandbox" / "state.json"
with open(os.environ["FAKE_DRILL_LOG"], "a") as log:
    log.write(" ".join(args[:2]) + "\n")
if args[:2] == ["env", "up"]:
    if not state.exists():
        state.parent.mkdir(parents=True, exist_ok=True)
        topology = args[args.index("--topology") + 1]
        state.write_text(json.dumps({
            "id": secrets.token_hex(6), "created_at": "now", "topology_file": topology,
            "regions": ["region-a", "region-b"], "ports": {}, "front_door_url": "http://127.0.0.1:40000",
            "dsn": "host=127.0.0.1 dbname=trading", "supervisor_pid": int(os.environ["FAKE_SUPERVISOR_PID"]),
            "status": "up"}))
    s = json.loads(state.read_text())
    print(json.dumps({"target": "sandbox", "kind": "sandbox", "sandbox_id": s["id"], "api_url": s["front_door_url"]}))
    print(f"sandbox {s['id']} up", file=sys.stderr)
elif args[:2] == ["env", "down"]:
    state.unlink(missing_ok=True)
    print("sandbox down", file=sys.stderr)
"""


# --- drill.yaml's fields ------------------------------------------------------------------------------


def _config(tmp_path: Path, **entry: Any) -> Path:
    config = tmp_path / "drill.yaml"
    config.write_text(yaml.safe_dump({"targets": {"tf": {"kind": "terraform", **entry}}}))
    return config


def test_terraform_is_a_registered_kind() -> None:
    assert "terraform" in registered_kinds()


def test_a_valid_entry_resolves_with_its_defaults(tmp_path: Path) -> None:
    target = resolve("tf", _config(tmp_path, root=str(SANDBOX_ROOT), target="sandbox"))
    assert isinstance(target.kind, TerraformKind)
    assert target.spec == TerraformSpec(root=str(SANDBOX_ROOT), target="sandbox")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"target": "sandbox"}, "targets.tf.root: required field is missing"),
        ({"root": "r"}, "targets.tf.target: required field is missing"),
        ({"root": "r", "target": "mainframe"}, "targets.tf.target: unknown kind 'mainframe'"),
        ({"root": "r", "target": "terraform"}, "targets.tf.target: unknown kind 'terraform'"),
        ({"root": "r", "target": "sandbox", "colour": "red"}, "targets.tf.colour: unknown field"),
        ({"root": "r", "target": "sandbox", "vars": {"state_dir": "/x"}}, "targets.tf.vars: Value error, state_dir "
                                                                          "is set by drillbit"),
        ({"root": "r", "target": "sandbox", "vars": {"a b": 1}}, "targets.tf.vars: Value error, 'a b' is not a "
                                                                  "Terraform variable name"),
        ({"root": "r", "target": "sandbox", "outputs": {"state_dir": "a..b"}}, "targets.tf.outputs: Value error, "
                                                                                "state_dir: 'a..b' is not an output"),
        ({"root": "", "target": "sandbox"}, "targets.tf.root: String should have at least 1 character"),
    ],
    ids=["no-root", "no-target", "unknown-kind", "itself", "unknown-field", "reserved-var", "bad-var-name",
         "bad-output-path", "empty-root"],
)  # fmt: skip
def test_a_bad_entry_is_one_line_naming_drill_yaml_and_the_field(tmp_path: Path, entry: dict[str, Any],
                                                                 expected: str) -> None:  # fmt: skip
    config = _config(tmp_path, **entry)
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    message = str(err.value)
    assert message.startswith(f"{config}: ") and "\n" not in message, message
    assert expected.replace("Value error, ", "") in message, message


def test_a_root_or_var_file_that_is_not_there_is_refused_before_terraform_runs(tmp_path: Path) -> None:
    config = _config(tmp_path, root=str(tmp_path / "nowhere"), target="sandbox")
    with pytest.raises(ConfigError, match=r"targets\.tf\.root: .*nowhere is not a Terraform root") as err:
        tf_status(config)
    assert str(err.value).startswith(str(config))
    config = _config(tmp_path, root=str(SANDBOX_ROOT), target="sandbox", var_file=str(tmp_path / "x.tfvars"))
    with pytest.raises(ConfigError, match=r"targets\.tf\.var_file: no such file .*x\.tfvars"):
        tf_status(config)


def tf_status(config: Path) -> dict[str, Any]:
    from drillbit.targets import env_status

    return env_status("tf", config=config, state_dir=config.parent / "state")


def test_a_relative_root_is_the_drill_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drill.yaml").write_text("targets: {}\n")
    (tmp_path / "tf").mkdir()
    monkeypatch.chdir(tmp_path)
    ws = Workspace.of("tf", TerraformSpec(root="tf", target="sandbox", var_file="tf/x.tfvars"), tmp_path / "st")
    assert ws.root == (tmp_path / "tf").resolve() and ws.var_file == (tmp_path / "tf" / "x.tfvars").resolve()
    assert ws.dir == (tmp_path / "st" / "terraform" / "tf").resolve() and ws.base == (tmp_path / "st").resolve()


# --- the command lines ---------------------------------------------------------------------------------


def test_the_command_lines_keep_state_and_working_files_per_environment(tmp_path: Path) -> None:
    spec = TerraformSpec(root=str(SANDBOX_ROOT), target="sandbox", var_file=str(tmp_path / "a.tfvars"),
                         vars={"topology": "/t.yaml", "n": 3, "flags": ["x"]})  # fmt: skip
    ws = Workspace.of("tf", spec, tmp_path / "st")
    env = ws.dir
    assert ws.init_cmd("tf") == ["tf", f"-chdir={SANDBOX_ROOT}", "init", "-input=false", "-no-color", "-reconfigure",
                                 f"-backend-config=path={env / 'terraform.tfstate'}"]  # fmt: skip
    plan = ws.plan_cmd("tf", spec, env / "p.tfplan")
    assert plan[:7] == ["tf", f"-chdir={SANDBOX_ROOT}", "plan", "-input=false", "-no-color", "-lock-timeout=60s",
                        "-detailed-exitcode"]  # fmt: skip
    assert plan[7:9] == [f"-out={env / 'p.tfplan'}", f"-var-file={tmp_path / 'a.tfvars'}"]
    pairs = dict(a.split("=", 1) for a in plan[10::2])
    assert pairs == {
        "state_dir": str(env / "env"),
        "drill": json.dumps([sys.executable, "-m", "drillbit.cli"]),
        "topology": "/t.yaml",
        "n": "3",
        "flags": '["x"]',
    }, pairs  # drill.yaml's topology wins
    assert "-destroy" in ws.plan_cmd("tf", spec, env / "p.tfplan", destroy=True)
    assert ws.apply_cmd("tf", env / "p.tfplan")[-2:] == ["-auto-approve", str(env / "p.tfplan")]
    assert ws.output_cmd("tf")[2:] == ["output", "-json", "-no-color"]
    assert ws.show_cmd("tf", env / "p.tfplan")[2:] == ["show", "-json", "-no-color", str(env / "p.tfplan")]
    tf_env = ws.env()
    assert tf_env["TF_DATA_DIR"] == str(env / "data") and tf_env["CHECKPOINT_DISABLE"] == "1"
    assert not str(env).startswith(str(ROOT / "infra"))  # never in the repository


def test_only_the_variables_a_root_declares_are_set(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('variable "state_dir" {\n  type = string\n}\n')
    ws = Workspace.of("tf", TerraformSpec(root=str(root), target="sandbox"), tmp_path)
    assert ws.var_args(TerraformSpec(root=str(root), target="sandbox")) == ["-var", f"state_dir={ws.env_dir}"]


# --- outputs and plans ---------------------------------------------------------------------------------

OUTPUT_JSON = json.dumps({
    "api_url": {"sensitive": False, "type": "string", "value": "http://127.0.0.1:4000"},
    "state_dir": {"sensitive": False, "type": "string", "value": "/s/env"},
    "kube_contexts": {"sensitive": False, "type": ["object", {}], "value": {"primary": "ctx-a"}},
    "topology": {"sensitive": False, "type": "string", "value": None},
})  # fmt: skip


def test_outputs_configure_the_inner_target_by_name_or_mapping() -> None:
    outputs = tfk.terraform_outputs(OUTPUT_JSON)
    assert outputs["kube_contexts"] == {"primary": "ctx-a"}
    spec = TerraformSpec(root="r", target="sandbox")
    assert tfk.inner_fields("tf", spec, outputs, SandboxSpec) == SandboxSpec(state_dir="/s/env")  # null: the default
    mapped = TerraformSpec(root="r", target="sandbox", outputs={"topology": "kube_contexts.primary"})
    assert tfk.inner_fields("tf", mapped, outputs, SandboxSpec) == SandboxSpec(state_dir="/s/env", topology="ctx-a")


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"topology": "nothing"}, "targets.tf.outputs.topology: the root has no output 'nothing' (has: api_url, "),
        (
            {"topology": "kube_contexts.secondary"},
            "targets.tf.outputs.topology: the root has no output 'kube_contexts.secondary'",
        ),
        (
            {"colour": "api_url"},
            "targets.tf.outputs.colour: a sandbox target has no such field "
            "(has: state_dir, topology, monitoring, backups)",
        ),
        ({"topology": "kube_contexts"}, "targets.tf.outputs.topology: Input should be a valid string"),
    ],
    ids=["no-output", "no-key", "no-field", "wrong-type"],
)
def test_outputs_that_do_not_fit_are_one_line_naming_drill_yaml_and_the_field(outputs: dict[str, str],
                                                                             expected: str) -> None:  # fmt: skip
    spec = TerraformSpec(root="r", target="sandbox", outputs=outputs)
    with pytest.raises(ConfigError) as err:
        tfk.inner_fields("tf", spec, tfk.terraform_outputs(OUTPUT_JSON), SandboxSpec, "/p/drill.yaml")
    assert str(err.value).startswith("/p/drill.yaml: targets.tf.outputs.") and expected in str(err.value), err.value


def test_output_that_is_not_json_is_an_environment_failure() -> None:
    with pytest.raises(EnvironmentFailure, match="printed no JSON"):
        tfk.terraform_outputs("Error: no state")


SHOWN = {
    "timestamp": "2026-12-02T15:00:00Z",
    "resource_changes": [
        {"address": "terraform_data.sandbox", "change": {
            "actions": ["delete", "create"],
            "before": {"id": "1", "input": {"a": 1}, "triggers_replace": {"in_sync": "yes", "topology_sha256": "x"}},
            "after": {"input": {"a": 1}, "triggers_replace": {"in_sync": None, "topology_sha256": "x"}},
            "after_unknown": {"id": True, "output": True, "triggers_replace": {"in_sync": True}}}},
        {"address": "terraform_data.other", "change": {"actions": ["no-op"], "before": {}, "after": {}}},
    ],
    "output_changes": {"api_url": {"actions": ["update"]}, "regions": {"actions": ["no-op"]}},
    "checks": [{"address": {"to_display": "check.sandbox_running"}, "status": "fail",
                "instances": [{"status": "fail", "problems": [{"message": "the sandbox abc made here is down"}]}]}],
}  # fmt: skip


def test_a_plans_changes_are_named_with_what_changes_and_why() -> None:
    assert tfk.changes_of(SHOWN) == [{"address": "terraform_data.sandbox", "action": "replace",
                                      "changed": ["triggers_replace.in_sync"],
                                      "reasons": ["the sandbox abc made here is down"]}]  # fmt: skip


def test_the_plan_digest_ignores_the_plans_timestamp_and_nothing_else() -> None:
    later = {**SHOWN, "timestamp": "2026-12-03T00:00:00Z"}
    assert tfk.plan_digest(SHOWN) == tfk.plan_digest(later)
    other = json.loads(json.dumps(SHOWN))
    other["resource_changes"][0]["change"]["before"]["triggers_replace"]["topology_sha256"] = "y"
    assert tfk.plan_digest(other) != tfk.plan_digest(SHOWN)


# --- the shipped sandbox root, with terraform ----------------------------------------------------------


@needs_terraform
def test_the_sandbox_root_inits_offline_and_validates(tmp_path: Path) -> None:
    env = {**os.environ, "TF_DATA_DIR": str(tmp_path / "data"), "CHECKPOINT_DISABLE": "1", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}  # fmt: skip
    env.pop("TF_CLI_CONFIG_FILE", None)
    root = tmp_path / "root"
    shutil.copytree(SANDBOX_ROOT, root)
    for args in (["init", "-input=false", "-backend=false"], ["validate", "-no-color"]):
        done = subprocess.run(["terraform", f"-chdir={root}", *args], capture_output=True, text=True, env=env,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / ".terraform").exists() and not (root / ".terraform.lock.hcl").exists()


def test_the_sandbox_root_outputs_what_staging_does() -> None:
    from drillbit.manifests.terraform import REQUIRED_OUTPUTS, load_tree

    roots = {m.display: m for m in load_tree(ROOT / "infra" / "terraform").roots()}
    sandbox, staging = roots["infra/terraform/sandbox"], roots["infra/terraform/envs/staging"]
    staging_outputs = {b.name for b in staging.of("output")}
    assert set(REQUIRED_OUTPUTS) <= {b.name for b in sandbox.of("output")}
    assert staging_outputs - {"drill_runner_role_arns"} <= {b.name for b in sandbox.of("output")}
    assert {b.type for b in sandbox.of("resource")} == {"terraform_data"} and not sandbox.of("provider")


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A tf target of the shipped root whose `drill` is the stand-in above, its own topology copy."""
    fake = tmp_path / "fake_drill.py"
    fake.write_text(FAKE_DRILL)
    monkeypatch.setattr(tfk, "DRILL_COMMAND", [sys.executable, str(fake)])
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setenv("FAKE_SUPERVISOR_PID", str(supervisor.pid))
    monkeypatch.setenv("FAKE_DRILL_LOG", str(tmp_path / "calls.log"))
    topology = tmp_path / "topology.yaml"
    topology.write_text("regions:\n  - name: region-a\n  - name: region-b\n")
    config = _config(tmp_path, root=str(SANDBOX_ROOT), target="sandbox", vars={"topology": str(topology)})
    monkeypatch.setenv("DRILL_CONFIG", str(config))
    state = tmp_path / "it's state"  # a quote and a space: the provisioners quote their shell words
    yield {"config": config, "state": state, "topology": topology, "supervisor": supervisor,
           "ws": Workspace.of("tf", TerraformSpec(root=str(SANDBOX_ROOT), target="sandbox"), state),
           "calls": tmp_path / "calls.log"}  # fmt: skip
    supervisor.kill()
    supervisor.wait()


def _drift(state: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()  # what came before
    code = main(["env", "drift", "--env", "tf", "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


@needs_terraform
def test_the_lifecycle_through_terraform_and_the_drift_it_detects(
    fake_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from drillbit.targets import env_down, env_up, is_up

    state, ws = fake_env["state"], fake_env["ws"]
    assert not is_up("tf", state_dir=state)
    code, result, err = _drift(state, capsys)  # nothing applied yet: the whole environment is missing
    assert code == 1 and result["changes"][0]["action"] == "create" and result["changes"][0]["changed"] == [], err
    assert "drift: terraform_data.sandbox must create\n" in err, err
    target = env_up("tf", state_dir=state, report=print)
    assert isinstance(target, TerraformTarget) and isinstance(target.inner, SandboxTarget)
    assert target.state_dir() == str(state.resolve())  # the faults resolve it again from here
    assert target.inner.state_dir() == str(ws.env_dir)
    assert target.endpoints().api_url == "http://127.0.0.1:40000"
    outputs = target.outputs
    assert outputs["regions"] == {"primary": "region-a", "secondary": "region-b"}
    assert outputs["api_url"] == "http://127.0.0.1:40000" and outputs["state_dir"] == str(ws.env_dir)
    assert outputs["db_global_cluster_id"] == f"drillbit-{outputs['sandbox_id']}"
    assert outputs["cluster_names"] == {} and outputs["alarm_names"] == []
    assert is_up("tf", state_dir=state)
    assert ws.state_file.exists() and (ws.data_dir / "terraform.tfstate").exists()  # state and backend: per env
    code, result, err = _drift(state, capsys)
    assert code == 0 and result["drift"] is False and result["changes"] == [], err
    spec = TerraformSpec(root=str(SANDBOX_ROOT), target="sandbox", vars={"topology": str(fake_env["topology"])})
    fingerprint = tfk.terraform_fingerprint(ws, spec)
    assert fingerprint["plan_digest"] == result["plan_digest"] and fingerprint["drift"] is False
    assert fingerprint["state_serial"] == result["state_serial"] >= 1

    # 1. brought down by hand: a replacement, with the reason; `up` repairs it and the next plan is clean
    sandbox_state = ws.env_dir / "sandbox" / "state.json"
    made = json.loads(sandbox_state.read_text())["id"]
    sandbox_state.unlink()
    code, result, err = _drift(state, capsys)
    assert code == 1 and result["changes"][0]["address"] == "terraform_data.sandbox", err
    assert result["changes"][0]["action"] == "replace"
    assert result["changes"][0]["changed"] == ["triggers_replace.in_sync"]
    assert f"the sandbox {made} made here is down" in err and "drift: terraform_data.sandbox must replace" in err
    env_up("tf", state_dir=state, report=print)
    assert _drift(state, capsys)[0] == 0

    # 2. replaced by hand (down, then up again outside Terraform): another sandbox id
    made = json.loads(sandbox_state.read_text())["id"]
    sandbox_state.write_text(json.dumps({**json.loads(sandbox_state.read_text()), "id": "0123456789ab"}))
    code, result, err = _drift(state, capsys)
    assert code == 1 and f"another sandbox (0123456789ab) runs where {made} was made" in err, err

    # 3. its processes killed by hand: the supervisor's pid is gone
    sandbox_state.write_text(
        json.dumps({**json.loads(sandbox_state.read_text()), "id": made, "supervisor_pid": 2**22 + 1})
    )
    code, result, err = _drift(state, capsys)
    assert code == 1 and "supervisor (pid 4194305) is gone" in err, err
    sandbox_state.write_text(json.dumps({**json.loads(sandbox_state.read_text()),
                                         "supervisor_pid": fake_env["supervisor"].pid}))  # fmt: skip
    assert _drift(state, capsys)[0] == 0

    # 4. the topology edited
    with fake_env["topology"].open("a") as f:
        f.write("# edited by hand\n")
    code, result, err = _drift(state, capsys)
    assert code == 1 and result["changes"][0]["changed"] == ["triggers_replace.topology_sha256"], err
    assert "terraform_data.sandbox must replace (triggers_replace.topology_sha256)" in err

    # down: the destroy-time provisioner ran `drill env down`; nothing left in the state or the env dir
    env_down("tf", state_dir=state, report=print)
    assert not sandbox_state.exists() and not (ws.env_dir / "terraform-made.json").exists()
    assert json.loads(ws.state_file.read_text())["resources"] == []
    assert not is_up("tf", state_dir=state)
    env_down("tf", state_dir=state, report=print)  # again: nothing to do
    calls = fake_env["calls"].read_text().split("\n")
    assert calls.count("env up") == 2 and calls.count("env down") == 2, calls


@needs_terraform
def test_terraform_errors_are_one_line_and_a_bad_variable_is_a_config_error(fake_env: dict[str, Any]) -> None:
    from drillbit.targets import env_up

    config = _config(fake_env["config"].parent, root=str(SANDBOX_ROOT), target="sandbox",
                     vars={"topology": str(fake_env["topology"].parent / "missing.yaml")})  # fmt: skip
    with pytest.raises(ConfigError) as err:
        env_up("tf", config=config, state_dir=fake_env["state"], report=print)
    message = str(err.value)
    assert message.startswith(f"{config}: targets.tf.vars: Invalid value for variable: ") and "\n" not in message
    assert "The topology must be an existing file (infra/sandbox/topology.yaml, or a copy)." in message, message
    config = _config(fake_env["config"].parent, root=str(SANDBOX_ROOT), target="sandbox", vars={"colour": "red"})
    with pytest.raises(ConfigError, match=r"targets\.tf\.vars: Value for undeclared variable"):
        env_up("tf", config=config, state_dir=fake_env["state"], report=print)


def test_drift_of_a_kind_without_a_definition_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "drift", "--env", "sandbox"]) == 2
    assert "only an environment drillbit provisions from a definition (kind terraform)" in capsys.readouterr().err
