"""drillbit's pytest plugin at collection (no drill runs here; tests/e2e/test_pytest_plugin.py runs
them): one test per judged SLA, a suite collected from suites.yaml, a marker without an experiment
refused. pytest runs in a subprocess in a project made with drill init."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drillbit.core.project import init_project
from drillbit.sla import load_sla_file, slas_for


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path / "project")
    return tmp_path / "project"


def _collect(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILL_PROJECT"}
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _ids(out: str) -> list[str]:
    return [line for line in out.splitlines() if "::" in line or line.endswith("]")]


def test_the_shipped_gate_is_one_test_per_sla_of_each_experiment_plus_the_fixture_test(project: Path) -> None:
    done = _collect(project, "tests/resilience")
    assert done.returncode == 0, done.stdout + done.stderr
    sla_file = load_sla_file(project / "experiments" / "slas.yaml")
    expected = {f"tests/resilience/test_gate.py::test_{name.replace('-', '_')}[{sla}]"
                for name in ("pod-kill", "rolling-update") for sla in slas_for(sla_file, name)}  # fmt: skip
    expected.add("tests/resilience/test_gate.py::test_a_gate_may_also_assert_on_the_measurements")
    assert set(_ids(done.stdout)) == expected, done.stdout


def test_a_suite_is_collected_from_suites_yaml_one_item_per_sla(project: Path) -> None:
    done = _collect(project, "--drill-suite", "ci-gate", "tests/resilience/test_gate.py::test_pod_kill")
    assert done.returncode == 0, done.stdout + done.stderr
    suite = yaml.safe_load((project / "experiments" / "suites.yaml").read_text())["suites"]["ci-gate"]["experiments"]
    sla_file = load_sla_file(project / "experiments" / "slas.yaml")
    for experiment in suite:
        stem = Path(experiment).stem
        for sla in slas_for(sla_file, stem):
            assert f"{stem}[{sla}]" in done.stdout, (stem, sla, done.stdout)


def test_a_drill_marker_without_an_experiment_is_a_usage_error(project: Path) -> None:
    (project / "tests" / "test_bad.py").write_text("import pytest\n\n@pytest.mark.drill()\ndef test_x():\n    pass\n")
    done = _collect(project, "tests/test_bad.py")
    assert done.returncode != 0 and "@pytest.mark.drill needs experiment=" in done.stdout + done.stderr
