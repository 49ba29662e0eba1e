"""drillbit's pytest plugin end to end: a project made with ``drill init``, its gate run by pytest in
a subprocess against the session's sandbox. Ground truth: pytest's own JUnit XML (read with
junitparser), its exit code, and the sandbox itself after an interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import junitparser
import pytest
import yaml

from drillbit.core.project import init_project
from drillbit.core.results import MEASUREMENTS, Measurements, read_model
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow

GATE = '''
import pytest


@pytest.mark.drill(experiment="pod-kill.yaml", baseline_s=3.0, cooldown_s=3.0)
def test_pod_kill():
    """The body is not called: each SLA is a test."""
'''


def _project(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """A new drill project (its shipped gate: tests/resilience, as in this repo, plus a one-drill
    gate in tests/test_gate.py) and an SLA file whose pod-kill SLAs include one no drill can meet."""
    project = tmp_path / "project"
    init_project(project)
    (project / "tests" / "test_gate.py").write_text(GATE)
    shipped = project / "tests" / "resilience" / "test_gate.py"  # as shipped, with shorter windows (CI time)
    text = shipped.read_text().replace('.yaml")', '.yaml", baseline_s=3.0, cooldown_s=3.0)')
    assert text.count("baseline_s=3.0") == 3, text  # both markers and the fixture's run
    shipped.write_text(text)
    slas = yaml.safe_load((project / "experiments" / "slas.yaml").read_text())
    slas["slas"]["impossible_p95"] = {"metric": "p95_ms", "phases": ["baseline"], "op": "<", "target": 0.001,
                                      "requirement": "E12000", "text": "p95 < 1 us (no drill meets it)"}  # fmt: skip
    slas["experiments"]["pod-kill"]["use"].append("impossible_p95")
    (project / "gate-slas.yaml").write_text(yaml.safe_dump(slas))
    judged = {name: list(slas["experiments"][name]["use"]) for name in ("pod-kill", "rolling-update")}
    return project, judged


def _pytest(project: Path, sandbox: Sandbox, tests: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DRILL_PROJECT", None)
    cmd = [sys.executable, "-m", "pytest", tests, "-p", "no:cacheprovider", "-s",
           "--drill-env", "sandbox", "--drill-state-dir", str(sandbox.layout.state_dir),
           "--drill-sla", "gate-slas.yaml", "--drill-out", "runs", *args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_shipped_gate_of_a_drill_init_project_is_one_junit_testcase_per_sla_and_fails_on_a_failed_sla(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    """The gate drill init writes (this repo's tests/resilience: pod-kill and rolling-update, and a
    test driving the drill fixture), run by pytest: each SLA a testcase, the one no drill can meet
    failed with its measured value and target, pytest's exit 1. Its rolling-update drill is also the
    e2e test of that drill (every replica rolled under load, no request failed)."""
    project, judged = _project(tmp_path)
    t0 = time.monotonic()
    proc = _pytest(project, sandbox_env, "tests/resilience", "--junitxml", "gate.xml")
    out, _ = proc.communicate(timeout=600)
    print(f"pytest gate: {time.monotonic() - t0:.1f} s\n{out[-3000:]}")
    assert proc.returncode == 1, out  # the impossible SLA FAILed
    cases = [c for suite in junitparser.JUnitXml.fromfile(str(project / "gate.xml")) for c in suite]
    expected = {f"test_{name.replace('-', '_')}[{sla}]" for name, slas in judged.items() for sla in slas}
    expected.add("test_a_gate_may_also_assert_on_the_measurements")
    assert {c.name for c in cases} == expected, sorted(c.name for c in cases)
    failed = {c.name: c for c in cases if c.is_failure}
    assert list(failed) == ["test_pod_kill[impossible_p95]"], failed
    message = next(r for r in failed["test_pod_kill[impossible_p95]"].result).message
    assert "FAIL E12000 p95 < 1 us" in message and "target < 0.001 ms" in message and "measured " in message
    assert sum(c.is_passed for c in cases) == len(expected) - 1, [(c.name, c.result) for c in cases]
    run_dirs = {p.value for c in cases for props in c.iterchildren(junitparser.Properties) for p in props
                if p.name == "drill_run_dir"}  # fmt: skip
    assert len(run_dirs) == 2  # one drill per experiment, judged by every SLA test (and the fixture test)
    for run_dir in map(Path, run_dirs):
        verdicts = json.loads((run_dir / "verdicts.json").read_text())
        name = run_dir.name.split("Z-", 1)[1]
        assert {v["sla"] for v in verdicts["verdicts"]} == set(judged[name])
        assert f"report {run_dir / 'report.html'}" in out  # the terminal summary links the report
        if name == "rolling-update":
            _rolled_every_replica_under_load(run_dir, sandbox_env)
    assert SandboxTarget(sandbox_env).whole()


def _rolled_every_replica_under_load(run_dir: Path, sandbox: Sandbox) -> None:
    """The gate's rolling-update drill (its SLAs passed above, zero failed requests among them): every
    replica of both regions replaced, under load, and each now answers with the drill's new version."""
    m = read_model(run_dir / MEASUREMENTS, Measurements)
    assert m.faults and m.faults[0].landed, m.faults
    assert len(m.faults[0].detail["replaced"]) >= 4  # every replica of both regions
    assert m.latency is not None and m.latency.phases["all"].ok > 1000  # it was under load
    version = m.faults[0].detail["version"]
    assert version.startswith("drill-")  # "auto": a version no replica ran before
    assert {v for vs in sandbox.versions().values() for v in vs} == {version}  # asked of each replica


def test_ctrl_c_during_a_drill_in_pytest_rolls_back_heals_and_stops_the_session(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    project, _ = _project(tmp_path)
    proc = _pytest(project, sandbox_env, "tests/test_gate.py")
    events = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # until the first fault is in
        found = sorted((project / "runs").glob("*/events.jsonl"))
        if found and '"fault.inject"' in found[0].read_text().replace(" ", ""):
            events = found[0]
            break
        time.sleep(0.2)
    assert events is not None, proc.communicate(timeout=60)[0][-3000:]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    print(out[-3000:])
    assert proc.returncode == 3, out
    run = json.loads((events.parent / "run.json").read_text())
    assert run["status"] == "interrupted", run
    assert SandboxTarget(sandbox_env).whole()  # healed: the killed replicas are back
