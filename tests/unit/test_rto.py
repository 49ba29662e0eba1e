"""The RTO analyzer on synthetic availability samples whose truth is exact."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.provider.python import run_python_activity, validate_python_activity

from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA, EVENTS
from drillbit.probes.availability import (
    RtoNotObserved,
    analyze_rto,
    rto_per_fault,
    rto_report,
    rto_seconds,
    service_recovered,
)

T0 = 1000.0
RTT = 0.002


def ctk(module: str, func: str, **arguments: object) -> object:
    """Run a probe the way chaostoolkit-lib runs a python provider (validated first)."""
    activity = {"type": "probe", "name": func,
                "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}  # fmt: skip
    validate_python_activity(activity)
    return run_python_activity(activity, {}, {})


def samples(pattern: str, interval: float = 0.1, latency: float = RTT) -> pd.DataFrame:
    """One probe per character, sent every ``interval`` from T0: '.' ok, 'x' 503, 't' timeout (no answer)."""
    t = T0 + np.arange(len(pattern)) * interval
    ok = np.array([c == "." for c in pattern])
    answered = np.array([c != "t" for c in pattern])
    return pd.DataFrame(
        {
            "t": t,
            "ok": ok,
            "latency": np.where(answered, latency, np.nan),
            "status": np.where(ok, 200, np.where(answered, 503, 0)),
            "error": [None if c == "." else "http" if c == "x" else "timeout" for c in pattern],
        }
    )


def scripted(kind: str, start: float, duration: float, *, interval: float = 0.1, phase: float = 0.0,
             timeout: float = 1.0, span: float = 20.0) -> pd.DataFrame:  # fmt: skip
    """What the sampler records against the ground truth scripting one outage [start, start + duration)."""
    t = T0 + phase + np.arange(int(span / interval)) * interval
    end = start + duration
    inside = (t >= start) & (t < end)
    if kind == "fail":
        latency = np.full(t.size, RTT)
        ok = ~inside
    else:  # freeze: everything arriving in the window is answered when it ends, in no particular order
        release = end + np.random.default_rng(int(start * 1000)).uniform(0, 1.5e-3, t.size)
        latency = np.where(inside, release - t, RTT)
        ok = np.ones(t.size, dtype=bool)
    timed_out = latency > timeout
    return pd.DataFrame(
        {
            "t": t,
            "ok": ok & ~timed_out,
            "latency": np.where(timed_out, np.nan, latency),
            "status": np.where(timed_out, 0, np.where(ok, 200, 503)),
            "error": ["timeout" if to else None if good else "http" for to, good in zip(timed_out, ok, strict=True)],
        }
    )


@pytest.mark.parametrize("kind", ["fail", "freeze"])
def test_the_truth_always_lies_within_the_stated_bounds(kind: str) -> None:
    rng = random.Random(7)
    for _ in range(60):
        duration = rng.choice([0.5, 1.3, 2.0, 4.7, 10.0])
        start = T0 + 2.0 + rng.random()
        s = scripted(kind, start, duration, phase=rng.random() * 0.1)
        slow = 0.25 if kind == "freeze" and duration < 1.0 else None
        r = analyze_rto(s, start, stability_window=2.0, slow_after=slow)
        assert r.recovered and r.rto_s is not None and r.rto_lower_s is not None and r.rto_upper_s is not None
        eps = RTT + 1e-9  # evidence instants are estimates within a round trip
        assert r.rto_lower_s - eps <= duration <= r.rto_upper_s + eps, (kind, duration, r)
        assert abs(r.rto_s - duration) <= r.error_bound_s + eps
        assert r.error_bound_s <= 0.05 + eps  # half an interval and a round trip
        assert abs(r.downtime_s - duration) <= 0.1
        assert r.detect_s is not None and 0 <= r.detect_s <= 0.1 + (slow or 1.0) + eps


def test_recovery_is_midway_between_the_last_failure_and_the_first_good_probe() -> None:
    r = analyze_rto(samples("....." + "xxxxx" + "." * 30), fault_at=T0 + 0.5, stability_window=1.0)
    # evidence time = send + latency - half a round trip = send + 1 ms
    assert r.recovered and r.rto_upper_s == pytest.approx(0.501) and r.rto_lower_s == pytest.approx(0.401)
    # bound: half the gap, plus a round trip (under 10 baseline probes: twice the median latency)
    assert r.rto_s == pytest.approx(0.451) and r.error_bound_s == pytest.approx(0.05 + 2 * RTT)
    assert r.detect_s == pytest.approx(0.002) and r.failed_probes == 5
    assert r.downtime_s == pytest.approx(0.451)
    assert r.to_dict()["rto_s"] == pytest.approx(0.451)


def test_a_flapping_recovery_restarts_the_stability_window() -> None:
    r = analyze_rto(samples("xxx" + "....." + "x" + "." * 30), fault_at=T0, stability_window=1.0)
    assert r.rto_upper_s == pytest.approx(0.901)  # the run of 5 oks was too short: recovery after probe 8
    assert r.rto_lower_s == pytest.approx(0.801)
    # down from the fault to midway before probe 3, and midway around probe 8
    assert r.failed_probes == 4 and r.downtime_s == pytest.approx(0.251 + 0.1005)


def test_an_error_rate_threshold_tolerates_sparse_failures() -> None:
    s = samples("xxx" + ".........x" * 4)
    strict = analyze_rto(s, fault_at=T0, stability_window=1.0)
    lenient = analyze_rto(s, fault_at=T0, stability_window=1.0, max_error_rate=0.15)
    assert strict.recovered is False and strict.rto_s is None
    assert lenient.recovered and lenient.rto_upper_s == pytest.approx(0.301)
    with pytest.raises(ValueError, match="max_error_rate"):
        analyze_rto(s, fault_at=T0, max_error_rate=1.0)


def test_no_failure_means_zero_rto_bounded_by_one_interval() -> None:
    r = analyze_rto(samples("." * 20), fault_at=T0)
    assert r.recovered and r.rto_s == 0.0 and r.detect_s is None and r.downtime_s == 0.0
    assert r.error_bound_s == pytest.approx(0.1)


def test_failures_before_the_fault_are_not_the_faults() -> None:
    r = analyze_rto(samples("xxxx" + "." * 20), fault_at=T0 + 0.4)
    assert r.rto_s == 0.0 and r.failed_probes == 0


def test_samples_ending_before_a_stable_run_give_no_number_only_a_lower_bound() -> None:
    r = analyze_rto(samples("xxxx" + "." * 5), fault_at=T0, stability_window=1.0)
    assert r.recovered is False and r.rto_s is None and r.rto_upper_s is None and r.recovered_at is None
    assert r.rto_lower_s == pytest.approx(0.301)
    never = analyze_rto(samples("." * 3 + "t" * 10), fault_at=T0 + 0.3, timeout=1.0)
    assert never.recovered is False and never.rto_lower_s == pytest.approx(0.9 + 1.0)  # the last timeout's end


def test_slow_answers_count_as_failures() -> None:
    s = samples("." * 30)
    s.loc[5:9, "latency"] = 1.2  # answered, but later than the default threshold (the timeout, 1 s)
    r = analyze_rto(s, fault_at=T0, stability_window=0.5)
    assert r.failed_probes == 5 and r.slow_after_s == 1.0
    s.loc[5:9, "latency"] = 0.8
    assert analyze_rto(s, fault_at=T0, stability_window=0.5).failed_probes == 0
    strict = analyze_rto(s, fault_at=T0, stability_window=0.5, slow_after=0.25)
    assert strict.failed_probes == 5
    assert strict.detect_s == pytest.approx(0.5 + 0.25)  # known to fail once it was 0.25 s overdue


def test_two_outages_add_up_to_the_downtime_and_the_second_extends_the_rto() -> None:
    r = analyze_rto(samples("..." + "xxxx" + "." * 10 + "xx" + "." * 20), fault_at=T0 + 0.3, stability_window=0.5)
    # fault at probe 3's send -> midway after probe 6; then midway around probes 17-18
    assert r.downtime_s == pytest.approx(0.351 + 0.2005, abs=1e-9)
    # 1 s of success between them was not recovery: the last run of success lasting to the end starts at probe 19
    assert r.rto_upper_s == pytest.approx(1.601) and r.rto_lower_s == pytest.approx(1.501)
    assert [round(o["length_s"], 4) for o in r.outages] == [0.351, 0.2005]
    assert [o["failed_probes"] for o in r.outages] == [4, 2]
    assert r.outages[1]["start_s"] == pytest.approx(1.3505) and r.outages[1]["end_s"] == pytest.approx(1.551)


def test_a_recovery_for_a_moment_then_failing_to_the_end_is_no_recovery() -> None:
    """Issue 12, case 1: 5 s of success after the first outage, then down to the end of the samples."""
    r = analyze_rto(samples("." * 10 + "x" * 20 + "." * 50 + "x" * 300), fault_at=T0 + 1.0, stability_window=5.0)
    assert r.recovered is False and r.rto_s is None and r.rto_lower_s == pytest.approx(36.901)
    assert len(r.outages) == 2 and r.outages[1]["length_s"] == pytest.approx(29.95, abs=0.01)


def test_each_fault_has_its_own_rto_and_an_unrecovered_one_runs_into_the_next() -> None:
    # fault A at probe 10 (down 1 s), B at 40 (down 2 s), C at 75 (down 3 s, back only 0.5 s before D at 110,
    # whose outage lasts 1 s)
    pattern = "." * 10 + "x" * 10 + "." * 20 + "x" * 20 + "." * 15 + "x" * 30 + "." * 5 + "x" * 10 + "." * 80
    s = samples(pattern)
    a, b, c, d = rto_per_fault(s, [T0 + i * 0.1 for i in (10, 40, 75, 110)], stability_window=1.0)
    assert a.rto_upper_s == pytest.approx(1.001) and a.until == pytest.approx(T0 + 4.0)
    assert b.rto_upper_s == pytest.approx(2.001)
    assert c.rto_upper_s == pytest.approx(4.501)  # 0.5 s of success before D: not recovered before it
    assert d.rto_upper_s == pytest.approx(1.001) and d.until is None


def test_no_samples_after_the_fault_raises() -> None:
    with pytest.raises(ValueError, match="no availability samples"):
        analyze_rto(samples("...."), fault_at=2000.0)


def _run_dir(tmp_path: Path, pattern: str, fault_at: float | None) -> str:
    (tmp_path / AVAILABILITY).parent.mkdir(parents=True)
    table = pa.Table.from_pandas(samples(pattern), schema=AVAILABILITY_SCHEMA, preserve_index=False)
    pq.write_table(table, tmp_path / AVAILABILITY)
    if fault_at is not None:
        with (tmp_path / EVENTS).open("w") as f:
            f.write(json.dumps({"t": T0 - 5, "kind": "phase", "name": "baseline"}) + "\n")
            f.write(json.dumps({"t": fault_at, "kind": "fault.inject", "action": "x"}) + "\n")
    return str(tmp_path)


def test_probe_functions_read_the_run_directory_and_the_fault_event(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "..." + "xxx" + "." * 60, fault_at=T0 + 0.3)
    assert rto_seconds(run, stability_window=5.0) == pytest.approx(0.251)
    report = rto_report(run, stability_window=5.0)
    assert report["recovered"] is True and json.loads(json.dumps(report)) == report
    assert service_recovered(run) is True
    assert rto_seconds(run, fault_at=T0 + 0.4, stability_window=5.0) == pytest.approx(0.151)
    assert ctk("drillbit.probes.availability", "rto_seconds", run_dir=run) == pytest.approx(0.251)


def test_probe_functions_raise_rather_than_invent_a_number(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rto_seconds(str(tmp_path), fault_at=T0)
    (tmp_path / "a").mkdir()
    no_event = _run_dir(tmp_path / "a", "." * 10, fault_at=None)
    with pytest.raises(ValueError, match=r"fault\.inject"):
        rto_seconds(no_event)
    (tmp_path / "b").mkdir()
    down = _run_dir(tmp_path / "b", "..." + "x" * 20, fault_at=T0 + 0.3)
    with pytest.raises(RtoNotObserved, match="RTO >"):
        rto_seconds(down)
    with pytest.raises(ActivityFailed, match="RtoNotObserved"):
        ctk("drillbit.probes.availability", "rto_seconds", run_dir=down)
    assert service_recovered(down) is False and rto_report(down)["rto_s"] is None
