"""Preflight: every shipped experiment is a valid drill; a bad one gets every problem in one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillbit.cli import main
from drillbit.core.errors import ConfigError
from drillbit.plan import load_plan

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p for p in (ROOT / "experiments").glob("*.yaml")
                     if p.name not in ("catalogue.yaml", "slas.yaml", "suites.yaml"))  # fmt: skip


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_shipped_experiment_is_a_valid_drill(path: Path) -> None:
    plan = load_plan(path)
    assert plan.faults, "a drill injects at least one drillbit fault"
    assert plan.slas
    assert plan.experiment["steady-state-hypothesis"]


def _write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fault(name: str, func: str, **arguments: object) -> dict[str, object]:
    provider = {"type": "python", "module": "drillbit.faults", "func": func, "arguments": arguments}
    return {"type": "action", "name": name, "provider": provider}


def _experiment(**changes: object) -> dict[str, object]:
    base = yaml.safe_load((ROOT / "experiments" / "region-loss.yaml").read_text())
    base.update(changes)
    return base


def test_every_problem_of_a_malformed_experiment_is_reported_at_once(tmp_path: Path) -> None:
    bad = _experiment(
        method=[_fault("typo", "kill_replica", count=1), _fault("bad-args", "lose_region", zone="a")],
        rollbacks=[],
        extensions=[{"name": "drillbit", "baseline_s": -1, "colour": "red"}],
    )
    with pytest.raises(ConfigError) as err:
        load_plan(_write(tmp_path, bad))
    message = str(err.value)
    assert "method[0].provider.func: drillbit.faults has no function 'kill_replica'" in message
    assert "method[1].provider.arguments.region: required field is missing: add it" in message
    assert "method[1].provider.arguments.zone: unknown field" in message
    assert "rollbacks: the method calls lose_region but no rollback calls restore_region" in message
    assert "extensions[drillbit].baseline_s" in message
    assert "extensions[drillbit].colour: unknown field" in message


def test_an_unknown_profile_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such profile: use one of"):
        load_plan(ROOT / "experiments" / "pod-kill.yaml", profile="tsunami")


def test_workers_override_the_experiments_generator_processes() -> None:
    plan = load_plan(ROOT / "experiments" / "pod-kill.yaml", workers=2)
    assert plan.settings.processes == 2 and any("2 process(es)" in line for line in plan.describe())
    assert load_plan(ROOT / "experiments" / "pod-kill.yaml").settings.processes == 1


@pytest.mark.parametrize("workers", [0, 17])
def test_drill_run_with_workers_out_of_range_prints_one_line_and_exits_2(
    workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(ROOT / "experiments" / "pod-kill.yaml"), "--workers", str(workers), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--workers" in err and "give 1 to 16" in err, err


def test_the_marketdata_locustfile_brings_the_market_data_slas() -> None:
    plan = load_plan(ROOT / "experiments" / "pod-kill.yaml", locustfile="marketdata")
    assert plan.settings.locustfile == "marketdata" and {"marketdata_latency", "marketdata_lost"} <= set(plan.slas)
    assert "marketdata_latency" not in load_plan(ROOT / "experiments" / "pod-kill.yaml").slas


def test_drill_run_with_an_unknown_locustfile_prints_one_line_naming_the_known_ones_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", str(ROOT / "experiments" / "pod-kill.yaml"), "--locustfile", "nope", "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--locustfile" in err and "marketdata, ping, trader" in err


def test_a_bad_sla_file_is_reported_with_the_experiment_checks(tmp_path: Path) -> None:
    sla = tmp_path / "slas.yaml"
    sla.write_text("slas: {}\ndefault: [rto]\n")
    with pytest.raises(ConfigError, match="default: unknown SLA 'rto'"):
        load_plan(ROOT / "experiments" / "pod-kill.yaml", sla_path=sla)


def test_drill_run_with_a_malformed_experiment_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _experiment(rollbacks=[]))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "restore_region" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_drill_run_with_an_unknown_profile_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(ROOT / "experiments" / "pod-kill.yaml"), "--profile", "tsunami", "--dry-run"])
    assert code == 2
    assert "no such profile" in capsys.readouterr().err


def test_drill_run_with_a_bad_sla_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sla = tmp_path / "slas.yaml"
    sla.write_text("slas: [\n")
    assert main(["run", str(ROOT / "experiments" / "pod-kill.yaml"), "--sla", str(sla), "--dry-run"]) == 2
    assert str(sla) in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_injects_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    code = main(["run", str(ROOT / "experiments" / "region-loss.yaml"), "--dry-run", "--state-dir", str(state),
                 "--out", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "lose-region-a" in out and "restore-region-a" in out and "R9.3" in out
    assert not state.exists() and not (tmp_path / "runs").exists()


def test_a_suite_is_validated_whole_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--suite", "quarterly-dr", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("plan for") == 6


def test_an_unknown_suite_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--suite", "nightly", "--dry-run"]) == 2
    assert "unknown suite 'nightly': use one of ci-gate, quarterly-dr" in capsys.readouterr().err


def test_a_blue_green_switch_needs_its_switch_back_as_a_rollback_and_known_arguments(tmp_path: Path) -> None:
    bad = _experiment(method=[_fault("switch", "switch_traffic", to="green", colour="x")], rollbacks=[])
    with pytest.raises(ConfigError) as err:
        load_plan(_write(tmp_path, bad))
    message = str(err.value)
    assert "rollbacks: the method calls switch_traffic but no rollback calls switch_traffic_back" in message
    assert "method[0].provider.arguments.colour: unknown field" in message
