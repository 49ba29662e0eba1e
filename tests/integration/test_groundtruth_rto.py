"""RTO measured by the availability sampler + analyzer, against outages of exactly known length.

Truth: drillbit.groundtruth fails (503) or freezes for exactly D seconds and reports the window in
its own clock. Requirement: the measured RTO is within max(100 ms, one sampling interval) of D.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from drillbit.calibration import measure_rto
from drillbit.clock import Clock
from probes.availability import AvailabilitySampler, analyze_rto, load_availability

pytestmark = pytest.mark.slow

INTERVAL = 0.1
TOLERANCE = max(0.1, INTERVAL)


def _measure(server: Any, run_dir: Path, kind: str, duration: float, window: float, **kw: Any) -> tuple[Any, float]:
    return measure_rto(server, run_dir, kind, duration, stability_window=window, interval=INTERVAL, **kw)


@pytest.mark.parametrize("duration", [0.5, 0.5, 0.5, 2.0, 2.0, 2.0, 10.0])
def test_rto_of_a_fail_fast_outage_is_within_one_interval_of_truth(
    groundtruth: Any, tmp_path: Path, duration: float
) -> None:
    result, truth = _measure(groundtruth, tmp_path, "fail", duration, window=1.0)
    assert result.recovered
    assert abs(result.rto_s - truth) <= TOLERANCE, (result.rto_s, truth)
    assert result.rto_upper_s >= truth - 0.005  # the conservative figure never reports recovery early
    assert result.rto_upper_s - truth <= INTERVAL + 0.02
    assert result.detect_s is not None and result.detect_s <= INTERVAL + 0.05
    assert abs(result.downtime_s - truth) <= 2 * INTERVAL


@pytest.mark.parametrize("duration", [0.5, 2.0])
def test_rto_of_a_freeze_is_within_one_interval_of_truth(groundtruth: Any, tmp_path: Path, duration: float) -> None:
    # a probe answered only when the freeze ends is late, not good: slow_after is the latency SLO
    result, truth = _measure(groundtruth, tmp_path, "freeze", duration, window=1.0, slow_after=0.25)
    assert result.recovered
    assert abs(result.rto_s - truth) <= TOLERANCE, (result.rto_s, truth)


def test_the_default_five_second_stability_window(groundtruth: Any, tmp_path: Path) -> None:
    result, truth = _measure(groundtruth, tmp_path, "fail", 0.5, window=5.0)
    assert result.stability_window_s == 5.0
    assert abs(result.rto_s - truth) <= TOLERANCE


def test_no_rto_is_invented_when_the_service_has_not_recovered(groundtruth: Any, tmp_path: Path) -> None:
    with AvailabilitySampler(f"{groundtruth.url}/probe", tmp_path, clock=Clock(), interval=INTERVAL, timeout=1.0):
        time.sleep(0.3)
        start, _end = groundtruth.outage("fail", 3.0)
        time.sleep(1.0)
    result = analyze_rto(load_availability(tmp_path), start, stability_window=1.0)
    assert result.recovered is False and result.rto_s is None and result.failed_probes >= 8
