"""The SLA file's profiles: section: SLAs a load profile adds and drops (a soak's drift)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbit.core.errors import ConfigError
from drillbit.probes import drift
from drillbit.sla import DRIFT_METRICS, METRICS, load_sla_file, slas_for


def test_the_soak_profile_adds_the_drift_slas_and_other_profiles_do_not() -> None:
    soak = slas_for(load_sla_file(), "pod-kill", profile="soak")
    assert "latency_drift" in soak and "harness_memory_slope" not in soak  # the harness's figure: reported only
    assert soak["latency_drift"].metric == "p95_drift_ratio"
    assert not {"harness_memory_slope", "latency_drift"} & set(slas_for(load_sla_file(), "pod-kill", profile="steady"))
    assert not {"harness_memory_slope", "latency_drift"} & set(slas_for(load_sla_file(), "pod-kill"))


def test_a_profile_file_counts_by_its_stem() -> None:
    assert "latency_drift" in slas_for(load_sla_file(), "observe", profile="loadtests/profiles/soak.yaml")


def test_a_profile_can_drop_an_sla(tmp_path: Path) -> None:
    path = tmp_path / "slas.yaml"
    path.write_text("slas:\n  rto: {metric: rto_s, op: '<', target: 900, requirement: R9.4, text: RTO}\n"
                    "  p95: {metric: p95_ms, op: '<', target: 100, requirement: E12000, text: p95}\n"
                    "default: [rto, p95]\nprofiles:\n  idle: {drop: [p95]}\n")  # fmt: skip
    assert list(slas_for(load_sla_file(path), "x", profile="idle")) == ["rto"]


def test_a_profile_naming_an_unknown_sla_is_one_line_naming_file_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "slas.yaml"
    path.write_text("slas:\n  rto: {metric: rto_s, op: '<', target: 900, requirement: R9.4, text: RTO}\n"
                    "default: [rto]\nprofiles:\n  soak: {add: [nope]}\n")  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_sla_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "profiles.soak.add: unknown SLA 'nope': define it under slas or remove it" in message
    assert "\n" not in message


def test_the_drift_metrics_are_known_metrics_and_the_ones_the_drift_probe_reads() -> None:
    assert set(METRICS) >= DRIFT_METRICS
    assert set(drift.DRIFT_METRICS) == DRIFT_METRICS
