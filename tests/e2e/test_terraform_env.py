"""An environment Terraform provisions (infra/terraform/sandbox, kind terraform), end to end on the real
sandbox: up through `terraform apply`, a drill PASSes against it, a change made by hand outside
Terraform (the topology edited) is drift (exit 1 naming the resource), and down (`terraform
destroy`) leaves no process and no port behind. Ground truth from the sandbox's own state and
processes, read independently of the target."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.cli import main
from drillbit.core.results import RUN, Outcome, RunInfo, read_model
from drillbit.plan import DrillPlan, load_plan
from drillbit.runner import RunOptions, run_drill
from drillbit.targets import env_down, env_up, is_up
from drillbit.targets.sandbox import procs
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.sandbox import SandboxState
from drillbit.targets.terraform import TerraformTarget

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "infra" / "terraform" / "sandbox"


def _plan(name: str, **settings: Any) -> DrillPlan:
    plan = load_plan(REPO / "experiments" / f"{name}.yaml")
    update = {"baseline_s": 3.0, "cooldown_s": 3.0, **settings}
    return dataclasses.replace(plan, settings=plan.settings.model_copy(update=update))


def _topology(tmp_path: Path) -> Path:
    """The shipped topology, as a copy a test may edit by hand (its manifests found where they are)."""
    shipped = REPO / "infra" / "sandbox" / "topology.yaml"
    data = yaml.safe_load(shipped.read_text())
    text = shipped.read_text().replace(f"manifests: {data['manifests']}",
                                       f"manifests: {(shipped.parent / data['manifests']).resolve()}")  # fmt: skip
    copy = tmp_path / "topology.yaml"
    copy.write_text(text)
    return copy


def _drift(state: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["env", "drift", "--env", "tf", "--state-dir", str(state)])
    out, err = capsys.readouterr()
    print(err)
    return code, json.loads(out), err


def test_up_through_terraform_then_a_drill_passes_drift_shows_and_down_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = _topology(tmp_path)
    config = tmp_path / "drill.yaml"
    entry = {"kind": "terraform", "root": str(ROOT), "target": "sandbox", "vars": {"topology": str(topology)}}
    config.write_text(yaml.safe_dump({"targets": {"tf": entry}}))
    monkeypatch.setenv("DRILL_CONFIG", str(config))  # the faults resolve the target by name from it too
    state = tmp_path / "st"
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    target = env_up("tf", state_dir=state, report=print)
    timings["up"] = time.monotonic() - t0
    assert isinstance(target, TerraformTarget) and isinstance(target.inner, SandboxTarget)
    sandbox = target.inner.sb
    sandbox_id, ports = sandbox.state.id, sandbox.state.port_map.all()
    try:
        assert target.outputs["sandbox_id"] == sandbox_id and target.outputs["api_url"] == sandbox.front_door_url
        assert target.outputs["regions"] == {"primary": "region-a", "secondary": "region-b"}
        assert sandbox.state.topology_file == str(topology)
        assert procs.tagged(sandbox_id, "supervisor") and is_up("tf", state_dir=state)

        t0 = time.monotonic()
        result = run_drill(_plan("pod-kill"), RunOptions(env="tf", state_dir=state, out=tmp_path / "runs", tty=False,
                                                         say=print))  # fmt: skip
        timings["drill"] = time.monotonic() - t0
        assert result.verdicts is not None and not result.started_env, result
        load = json.loads((result.run_dir / "load.json").read_text())
        if load.get("saturated"):  # a machine too busy to generate the load: INCONCLUSIVE, as it must be
            assert result.exit_code == 3 and result.verdicts.outcome is Outcome.INCONCLUSIVE, result.verdicts
        else:
            assert result.exit_code == 0 and result.verdicts.outcome is Outcome.PASS, result.verdicts
        info = read_model(result.run_dir / RUN, RunInfo)
        fingerprint = info.target["fingerprint"]
        assert info.target["kind"] == "terraform" and fingerprint["sandbox_id"] == sandbox_id
        assert fingerprint["terraform"]["drift"] is False and len(fingerprint["terraform"]["plan_digest"]) == 64
        serial = fingerprint["terraform"]["state_serial"]
        assert isinstance(serial, int) and serial >= 1

        t0 = time.monotonic()
        code, clean, err = _drift(state, capsys)
        timings["drift"] = time.monotonic() - t0
        assert code == 0 and clean["drift"] is False and clean["plan_digest"] == fingerprint["terraform"]["plan_digest"]

        with topology.open("a") as f:  # a change made by hand, outside Terraform
            f.write("# edited by hand\n")
        code, drifted, err = _drift(state, capsys)
        assert code == 1 and drifted["drift"] is True, err
        assert [(c["address"], c["action"], c["changed"]) for c in drifted["changes"]] == [
            ("terraform_data.sandbox", "replace", ["triggers_replace.topology_sha256"])], drifted  # fmt: skip
        assert "drift: terraform_data.sandbox must replace (triggers_replace.topology_sha256)" in err
        assert drifted["plan_digest"] != clean["plan_digest"] and drifted["state_serial"] == clean["state_serial"]
    finally:
        t0 = time.monotonic()
        env_down("tf", state_dir=state, report=print)
        timings["down"] = time.monotonic() - t0
    print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")

    # nothing left: no process of that sandbox, no port it held, no state of it
    assert procs.wait_gone(procs.tagged(sandbox_id), timeout=5.0) == []
    assert procs.wait_ports_free(ports, timeout=10.0) == []
    env = state / "terraform" / "tf" / "env"
    assert SandboxState.load(Layout.at(env)) is None and not (env / "terraform-made.json").exists()
    assert not (env / "sandbox.lock").exists()
    assert json.loads((state / "terraform" / "tf" / "terraform.tfstate").read_text())["resources"] == []
    assert not is_up("tf", state_dir=state)
