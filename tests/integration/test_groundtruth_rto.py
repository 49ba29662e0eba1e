"""RTO measured by the real availability sampler + analyzer, against outages of exactly known length.

Truth: drillbit.testing.groundtruth (its own process, loopback) fails (503) or freezes (holds every answer
until the window ends) for exactly D seconds and reports the window in its own clock. The
sampler probes it every 100 ms; the fault time given to the analyzer is the true outage start
(written as the run's ``fault.inject`` event, read back by the Chaos Toolkit probe function).
Requirement: |measured RTO - D| <= max(100 ms, one sampling interval), and the stated bounds hold
(the RTO's and the downtime's: measured - truth within the bound the report states).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.rundir import EVENTS
from drillbit.probes.availability import AvailabilitySampler, RtoNotObserved, rto_report, rto_seconds
from drillbit.testing.calibration import GroundTruth

pytestmark = pytest.mark.slow

INTERVAL = 0.1
TOLERANCE = max(0.1, INTERVAL)
SLACK = 0.02  # loopback and scheduling jitter on the bounds' edges (each bound is an observed instant)


def measure(
    server: GroundTruth, run_dir: Path, kind: str, duration: float, *, window: float, **analysis: Any
) -> tuple[dict[str, Any], float]:
    """Sample the server through one scripted outage; return (the RTO report, the true duration)."""
    clock = Clock()
    with AvailabilitySampler(f"{server.url}/probe", run_dir, clock=clock, interval=INTERVAL, timeout=1.0):
        time.sleep(0.5 + random.random() * INTERVAL)  # a random phase against the probe ticks
        start, end = server.outage(kind, duration)
        with EventLog(run_dir / EVENTS, clock) as events:
            events.emit("fault.inject", t=start, action=f"groundtruth {kind} {duration} s")
        time.sleep(duration + window + 0.6)
    report = rto_report(str(run_dir), stability_window=window, **analysis)
    truth = end - start
    print(f"\nRTO {kind} D={truth:.3f} s: measured {report['rto_s']:.4f} s (error {report['rto_s'] - truth:+.4f} s, "
          f"bound ±{report['error_bound_s']:.4f} s), upper {report['rto_upper_s']:.4f} s, "
          f"detect {report['detect_s']:.4f} s, downtime {report['downtime_s']:.4f} s")  # fmt: skip
    return report, truth


def check(report: dict[str, Any], truth: float) -> None:
    assert report["recovered"] is True
    assert abs(report["rto_s"] - truth) <= TOLERANCE, (report["rto_s"], truth)
    assert report["rto_lower_s"] - SLACK <= truth <= report["rto_upper_s"] + SLACK, report
    assert abs(report["rto_s"] - truth) <= report["error_bound_s"] + SLACK, report
    assert report["error_bound_s"] <= INTERVAL / 2 + SLACK, report


@pytest.mark.parametrize("duration", [0.5, 0.5, 0.5, 2.0, 2.0, 2.0, 10.0])
def test_rto_of_a_fail_fast_outage(groundtruth: GroundTruth, tmp_path: Path, duration: float) -> None:
    report, truth = measure(groundtruth, tmp_path, "fail", duration, window=1.0)
    check(report, truth)
    assert report["detect_s"] <= INTERVAL + SLACK
    # each edge of the outage is a midpoint between probes: half an interval off at most, each end
    assert abs(report["downtime_s"] - truth) <= report["downtime_error_bound_s"] + SLACK, report
    assert report["downtime_error_bound_s"] <= INTERVAL + 2 * SLACK, report
    assert report["failed_probes"] == pytest.approx(truth / INTERVAL, abs=2)


@pytest.mark.parametrize(("duration", "slow_after"), [(0.5, 0.25), (2.0, None)])
def test_rto_of_a_freeze(groundtruth: GroundTruth, tmp_path: Path, duration: float, slow_after: float | None) -> None:
    # a probe held by the freeze and answered when it ends is late, not good; its answer (not its
    # send) is when the service came back. slow_after None: the default, the 1 s timeout
    report, truth = measure(groundtruth, tmp_path, "freeze", duration, window=1.0, slow_after=slow_after)
    check(report, truth)
    assert report["detect_s"] <= INTERVAL + (slow_after or 1.0) + SLACK, report
    assert abs(report["downtime_s"] - truth) <= 2 * INTERVAL, report  # probes answered in a burst at the end


def test_the_default_five_second_stability_window(groundtruth: GroundTruth, tmp_path: Path) -> None:
    report, truth = measure(groundtruth, tmp_path, "fail", 0.5, window=5.0)
    assert report["stability_window_s"] == 5.0
    check(report, truth)


def test_no_rto_is_invented_when_the_service_has_not_recovered(groundtruth: GroundTruth, tmp_path: Path) -> None:
    clock = Clock()
    with AvailabilitySampler(f"{groundtruth.url}/probe", tmp_path, clock=clock, interval=INTERVAL, timeout=1.0):
        time.sleep(0.3)
        start, _end = groundtruth.outage("fail", 3.0)
        time.sleep(1.0)
    report = rto_report(str(tmp_path), fault_at=start, stability_window=1.0)
    assert report["recovered"] is False and report["rto_s"] is None and report["failed_probes"] >= 8
    assert 0.8 <= report["rto_lower_s"] <= 1.1  # still failing at the end of the samples
    with pytest.raises(RtoNotObserved):
        rto_seconds(str(tmp_path), fault_at=start, stability_window=1.0)


@pytest.mark.parametrize("second", ["fail", "freeze"])
def test_a_second_outage_after_a_stable_recovery_extends_the_rto(groundtruth: GroundTruth, tmp_path: Path,
                                                                 second: str) -> None:  # fmt: skip
    """Issue 12, case 1, against a real server: down 1 s, back for 1.5 s (longer than the 1 s stability window),
    then down again for 2 s. The RTO runs to the end of the second outage; both are listed."""
    clock = Clock()
    with AvailabilitySampler(f"{groundtruth.url}/probe", tmp_path, clock=clock, interval=INTERVAL, timeout=1.0):
        time.sleep(0.5 + random.random() * INTERVAL)
        start1, end1 = groundtruth.outage("fail", 1.0)
        start2, end2 = groundtruth.outage(second, 2.0, start_in=2.5)
        with EventLog(tmp_path / EVENTS, clock) as events:
            events.emit("fault.inject", t=start1, action="groundtruth two outages")
        time.sleep(2.5 + 2.0 + 1.0 + 0.8)
    report = rto_report(str(tmp_path), stability_window=1.0, slow_after=0.25)
    truth = end2 - start1
    print(f"\nRTO of two outages: measured {report['rto_s']:.4f} s, truth {truth:.4f} s; "
          f"outages {[(round(o['start_s'], 3), round(o['length_s'], 3)) for o in report['outages']]}")  # fmt: skip
    assert report["recovered"] and abs(report["rto_s"] - truth) <= TOLERANCE + SLACK, (report["rto_s"], truth)
    assert len(report["outages"]) == 2, report["outages"]
    for measured, (a, b) in zip(report["outages"], [(start1, end1), (start2, end2)], strict=True):
        assert abs(measured["start"] - a) <= TOLERANCE + SLACK and abs(measured["end"] - b) <= TOLERANCE + SLACK
    assert abs(report["downtime_s"] - (end1 - start1 + end2 - start2)) <= 2 * TOLERANCE + SLACK
