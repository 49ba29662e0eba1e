"""SLA files: the default file matches the seeds, per-experiment selection and overrides, every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbit.core.errors import ConfigError
from drillbit.sla import load_sla_file, slas_for


def test_the_default_sla_file_holds_the_seed_targets() -> None:
    slas = load_sla_file().slas
    assert (slas["rto"].op, slas["rto"].target, slas["rto"].requirement) == ("<", 900, "R9.4")
    assert (slas["rpo"].target, slas["rpo"].requirement) == (60, "R9.4")  # the stricter of 1 and 5 min
    assert (slas["region_failover"].target, slas["region_failover"].requirement) == (300, "R9.3")
    assert (slas["p95"].target, slas["p95"].phases) == (100, ["baseline", "after"])
    assert (slas["zero_failed_requests"].target, slas["zero_failed_requests"].requirement) == (0, "R1.4")


def test_an_experiment_gets_its_own_slas_with_overrides_applied() -> None:
    slas = slas_for(load_sla_file(), "rolling-update")
    assert list(slas) == ["zero_failed_requests", "availability", "p95", "error_rate", "integrity"]
    assert slas["p95"].phases == ["baseline", "fault", "recovery", "after"]
    assert slas["availability"].phases == ["fault", "recovery"]  # "while the fault runs", not the whole drill


def test_an_unlisted_experiment_gets_the_default_slas() -> None:
    assert list(slas_for(load_sla_file(), "my-own-experiment")) == ["rto", "rpo", "lost_writes", "p95",
                                                                    "order_execution", "error_rate"]  # fmt: skip


EXPERIMENTS = ("pod-kill", "region-loss", "db-failover", "db-switchover", "rolling-update", "load-spike")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_judges_an_error_rate_and_latency_counts_failures(experiment: str) -> None:
    slas = slas_for(load_sla_file(), experiment)
    assert any(s.metric == "error_rate_percent" and s.source == "load" for s in slas.values())
    assert all(s.failed == "include" for s in slas.values() if s.metric.startswith("p"))


@pytest.mark.parametrize("experiment", ["region-loss", "db-failover", "db-switchover"])
def test_no_acknowledged_order_lost_is_judged_as_a_count(experiment: str) -> None:
    lost = slas_for(load_sla_file(), experiment)["lost_writes"]
    assert (lost.metric, lost.op, lost.target, lost.requirement) == ("lost_writes", "==", 0, "R13.4")


def test_the_spike_drill_judges_the_spikes_own_error_rate() -> None:
    spike = slas_for(load_sla_file(), "load-spike")["spike_error_rate"]
    assert spike.source == "spike" and spike.metric == "error_rate_percent"


def test_every_problem_in_an_sla_file_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "slas.yaml"
    bad.write_text(
        "slas:\n"
        "  rto: {metric: rto_minutes, op: '<', target: 900, requirement: R9.4, text: RTO}\n"
        "  p95: {metric: p95_ms, op: '~', target: 100, requirement: E12000, text: p95}\n"
        "default: [rto, nope]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_sla_file(bad)
    message = str(err.value)
    assert str(bad) in message
    assert "slas.rto: metric: unknown metric 'rto_minutes'" in message
    assert "slas.p95.op" in message


def test_a_reference_to_an_undefined_sla_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "slas.yaml"
    bad.write_text(
        "slas:\n  rto: {metric: rto_s, op: '<', target: 900, requirement: R9.4, text: RTO}\n"
        "default: [rto, nope]\nexperiments:\n  pod-kill: {use: [rto, missing]}\n"
    )
    with pytest.raises(ConfigError, match=r"default: unknown SLA 'nope'.*experiments.pod-kill: unknown SLA 'missing'"):
        load_sla_file(bad)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "slas.yaml"
    bad.write_text("slas:\n  rto: {metric: [\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_sla_file(bad)
