"""A Chaos Toolkit experiment from experiments/, run by chaostoolkit-lib against the real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
from chaoslib.loader import load_experiment

from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_pod_kill_experiment_runs_through_chaostoolkit_and_the_hypothesis_holds(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILL_STATE_DIR", str(sandbox_env.layout.state_dir))
    experiment = load_experiment(str(EXPERIMENTS / "pod-kill.yaml"))
    ensure_experiment_is_valid(experiment)
    before = {pid for r in sandbox_env.regions for pid in sandbox_env.supervisor.pids(f"api-{r}")}
    journal = run_experiment(experiment, settings={})
    assert journal["status"] == "completed", journal["status"]
    assert journal["deviated"] is False
    (action,) = [run for run in journal["run"] if run["activity"]["type"] == "action"]
    assert action["status"] == "succeeded"
    killed = action["output"]["killed"][0]["pid"]
    assert killed in before
    after = {pid for r in sandbox_env.regions for pid in sandbox_env.supervisor.pids(f"api-{r}")}
    assert killed not in after


def test_an_unknown_target_fails_the_activity_not_the_harness(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILL_STATE_DIR", str(sandbox_env.layout.state_dir))
    monkeypatch.setenv("DRILL_TARGET", "mainframe")
    experiment = load_experiment(str(EXPERIMENTS / "pod-kill.yaml"))
    journal = run_experiment(experiment, settings={})
    assert journal["status"] in ("failed", "aborted")
    probe = journal["steady_states"]["before"]["probes"][0]
    assert "unknown target 'mainframe'" in probe["exception"][-1]
