"""The latency analyzer against synthetic request records whose percentiles are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.rundir import EVENTS, LOAD_META
from drillbit.load.recording import RequestSink
from drillbit.probes.latency import (
    HIGHEST_US,
    GeneratorSaturated,
    Requests,
    _bucket_index,
    analyze_latency,
    analyze_run,
    histogram,
    latency_percentile,
    load_requests,
    phases_from_events,
    unreadable_parts,
)

HDR = 0.001  # HdrHistogram with 3 significant digits: values are at most 0.1 % off


def reqs(latency: np.ndarray, intended: np.ndarray, lateness: float | np.ndarray = 0.0, status: int = 200) -> Requests:
    n = len(latency)
    return Requests(
        intended=intended,
        start=intended + lateness,
        latency=latency,
        status=np.full(n, status, dtype=np.int16),
        error=np.zeros(n, dtype=bool),
    )


def test_vectorized_bucketing_is_hdrhistograms_own() -> None:
    rng = np.random.default_rng(3)
    us = np.unique(np.concatenate([np.arange(1, 5000), rng.integers(1, HIGHEST_US, 20_000)]))
    h = HdrHistogram(1, HIGHEST_US, 3)
    got = _bucket_index(us / 1e6)
    want = np.array([h._counts_index_for(int(v)) for v in us])
    assert np.array_equal(got, want)


def test_histogram_matches_record_value_one_by_one() -> None:
    rng = np.random.default_rng(5)
    lat = rng.lognormal(-3.0, 1.5, 20_000)
    slow = HdrHistogram(1, HIGHEST_US, 3)
    for v in np.clip(np.rint(lat * 1e6), 1, HIGHEST_US).astype(int):
        slow.record_value(int(v))
    fast = histogram(lat)
    assert fast.get_total_count() == slow.get_total_count() == lat.size
    for p in (1, 50, 90, 99, 99.9, 100):
        assert fast.get_value_at_percentile(p) == slow.get_value_at_percentile(p)


def test_percentiles_match_numpy_within_hdr_precision() -> None:
    rng = np.random.default_rng(1)
    lat = rng.lognormal(mean=-4.0, sigma=0.8, size=200_000)  # ~18 ms median
    stats = analyze_latency(reqs(lat, np.arange(lat.size) / 1000.0))["all"]
    for p, got in ((50, stats.p50_ms), (95, stats.p95_ms), (99, stats.p99_ms)):
        want = float(np.percentile(lat, p)) * 1000
        assert got == pytest.approx(want, rel=HDR)
    assert stats.max_ms == pytest.approx(lat.max() * 1000, rel=HDR)
    assert stats.count == stats.ok == 200_000 and stats.intended_rps == pytest.approx(1000)


def test_corrected_latency_counts_the_wait_before_sending() -> None:
    intended = np.arange(1000) / 100.0
    r = reqs(np.full(1000, 0.010), intended, lateness=np.where(np.arange(1000) >= 900, 0.5, 0.0))
    s = analyze_latency(r)["all"]
    assert s.uncorrected_p99_ms == pytest.approx(10, rel=HDR)
    assert s.p99_ms == pytest.approx(510, rel=HDR)  # the last 10 % waited 0.5 s before being sent
    assert s.p50_ms == pytest.approx(10, rel=HDR)


def test_a_freeze_implies_its_corrected_percentiles_exactly() -> None:
    """Requests intended during a 2 s freeze are answered at its end: corrected = end - intended."""
    rate, freeze = 500, (10.0, 12.0)
    intended = np.arange(0, 30, 1 / rate)
    frozen = (intended >= freeze[0]) & (intended < freeze[1])
    # under a cap, frozen requests are sent late too (uncorrected stays small); here: sent at the freeze's end
    start = np.where(frozen, freeze[1], intended)
    latency = np.full(intended.size, 0.001)
    r = Requests(intended, start, latency, np.full(intended.size, 200, np.int16), np.zeros(intended.size, bool))
    s = analyze_latency(r)["all"]
    implied = np.where(frozen, freeze[1] - intended, 0.0) + 0.001
    assert s.p99_ms == pytest.approx(np.percentile(implied, 99) * 1000, rel=HDR)  # 2 s - 1 % of 30 s = 1.7 s
    assert s.p99_ms > 1690 and s.uncorrected_p99_ms == pytest.approx(1.0, rel=HDR)


def test_phases_split_by_intended_time_with_rates_and_errors() -> None:
    intended = np.arange(2000) / 100.0  # 100 req/s for 20 s
    lat = np.where(intended < 10, 0.005, 0.050)
    r = reqs(lat, intended)
    status = r.status.copy()
    status[1500:1600] = 503
    error = np.zeros(2000, dtype=bool)
    error[1500:1600] = True
    r = Requests(r.intended, r.start, r.latency, status, error)
    out = analyze_latency(r, {"baseline": (0.0, 10.0), "fault": (10.0, 20.0)})
    assert out["baseline"].count == 1000 and out["baseline"].p95_ms == pytest.approx(5, rel=HDR)
    assert out["fault"].p95_ms == pytest.approx(50, rel=HDR)
    assert out["fault"].error_rate == pytest.approx(0.1) and out["fault"].errors == 100
    assert out["baseline"].intended_rps == pytest.approx(100)
    assert out["fault"].throughput_rps == pytest.approx(90) and out["fault"].achieved_rps == pytest.approx(100)
    assert out["all"].count == 2000 and out["all"].intended_rps == pytest.approx(100)


def test_a_request_belongs_to_the_phase_of_its_intended_time_not_its_start() -> None:
    intended = np.array([9.9, 10.1])
    r = reqs(np.full(2, 0.001), intended, lateness=np.array([0.5, 0.0]))  # the first starts at 10.4
    out = analyze_latency(r, {"a": (0.0, 10.0), "b": (10.0, 20.0)})
    assert out["a"].count == 1 and out["b"].count == 1
    assert out["a"].p50_ms == pytest.approx(501, rel=HDR)


def test_a_500_is_an_error_even_unflagged_but_a_409_the_locustfile_accepted_is_not() -> None:
    r = reqs(np.full(3, 0.001), np.arange(3.0))
    status = np.array([200, 409, 503], dtype=np.int16)
    s = analyze_latency(Requests(r.intended, r.start, r.latency, status, r.error))["all"]
    assert s.ok == 2 and s.errors == 1


def test_requests_without_an_outcome_are_counted_apart() -> None:
    n = 100
    intended = np.arange(n) / 10.0
    start = intended.copy()
    start[90:] = np.nan  # not sent
    latency = np.where(np.isnan(start), np.nan, 0.002)
    error = np.zeros(n, dtype=bool)
    error[90:] = True
    error[80:85] = True  # five failures
    unsent = np.zeros(n, dtype=bool)
    unsent[90:] = True
    r = Requests(intended, start, latency, np.where(error, 0, 200).astype(np.int16), error, unsent)
    s = analyze_latency(r)["all"]
    assert (s.count, s.ok, s.errors, s.not_sent) == (100, 85, 5, 10)
    assert s.error_rate == pytest.approx(5 / 90)
    assert s.achieved_rps == pytest.approx(9) and s.intended_rps == pytest.approx(10)
    assert s.p99_ms == pytest.approx(2, rel=HDR)


def test_closed_model_records_have_no_intended_time() -> None:
    start = np.arange(100) / 10.0
    r = Requests(
        np.full(100, np.nan), start, np.full(100, 0.02), np.full(100, 200, dtype=np.int16), np.zeros(100, bool)
    )
    s = analyze_latency(r, {"first half": (0.0, 5.0)})
    assert s["all"].intended_rps is None and s["all"].p50_ms == s["all"].uncorrected_p50_ms
    assert s["all"].p50_ms == pytest.approx(20, rel=HDR)
    assert s["first half"].count == 50


def test_no_records_raise() -> None:
    empty = np.array([], dtype=float)
    with pytest.raises(ValueError, match="no request records"):
        analyze_latency(Requests(empty, empty, empty, empty.astype(np.int16), empty.astype(bool)))


def _run_dir(tmp_path: Path, workers: int = 2) -> Path:
    """Two workers' files as the recorder writes them: 10 req/s each, 0.5 s freeze in phase "fault"."""
    run = tmp_path / "run"
    for w in range(workers):
        sink = RequestSink(run, w)
        for i in range(300):
            t = 1000.0 + i / 10 + w / 20
            late = 0.4 if 10.0 <= t - 1000.0 < 10.5 else 0.0
            sink.add("GET /x", t, t + late, 0.004, 200, None)
        sink.add("(not sent)", 1030.0, np.nan, np.nan, 0, "not_sent")
        sink.add("(abandoned)", 1030.0, 1030.0, np.nan, 0, "abandoned")
        sink.add("GET /x", 1005.0, 1005.0, 5.0, 0, "timeout")
        sink.close()
    with EventLog(run / EVENTS, Clock()) as log:
        log.emit("phase", t=1000.0, name="baseline")
        log.emit("phase", t=1010.0, name="fault")
        log.emit("phase", t=1011.0, name="recovery")
    return run


def test_load_requests_reads_every_worker_file(tmp_path: Path) -> None:
    r = load_requests(_run_dir(tmp_path))
    assert len(r) == 2 * 303
    assert r.unsent is not None and int(r.unsent.sum()) == 4 and int(r.error.sum()) == 6
    assert np.isnan(r.start).sum() == 2


def test_phases_come_from_the_events(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    assert phases_from_events(run) == {
        "baseline": (1000.0, 1010.0),
        "fault": (1010.0, 1011.0),
        "recovery": (1011.0, float("inf")),
    }
    report = analyze_run(run)
    assert report.generator_saturated is None and not report.trustworthy  # no load.json: unknown
    fault = report.phases["fault"]
    assert fault.count == 20 and fault.p99_ms == pytest.approx(404, rel=HDR)
    assert report.phases["baseline"].errors == 2 and report.phases["baseline"].p99_ms == pytest.approx(4, rel=HDR)
    assert report.phases["recovery"].not_sent == 4
    assert report.phases["recovery"].window[1] < 1031  # an open-ended phase is clipped to the records


def test_the_report_carries_the_generators_verdict(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / LOAD_META).write_text(json.dumps({"saturated": True, "reasons": ["generator CPU-bound"], "complete": True}))
    report = analyze_run(run, {"x": (1000.0, 1010.0)})
    assert report.generator_saturated is True and report.saturation_reasons == ["generator CPU-bound"]
    assert not report.trustworthy and set(report.to_dict()["phases"]) == {"all", "x"}


def test_the_probe_measures_a_named_phase_and_raises_when_it_cannot(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    assert latency_percentile(str(run), phase="fault", percentile=99) == pytest.approx(404, rel=HDR)
    assert latency_percentile(str(run), phase="fault", percentile=99, corrected=False) == pytest.approx(4, rel=HDR)
    assert latency_percentile(str(run)) == pytest.approx(4, rel=HDR)
    with pytest.raises(ValueError, match=r"no phase 'nonesuch'.*use one of all, baseline, fault, recovery"):
        latency_percentile(str(run), phase="nonesuch")
    with pytest.raises(FileNotFoundError, match="no request records"):
        latency_percentile(str(tmp_path / "empty"))
    (run / LOAD_META).write_text(json.dumps({"saturated": True, "reason": "generator CPU-bound"}))
    with pytest.raises(GeneratorSaturated, match="generator CPU-bound"):
        latency_percentile(str(run))
    assert latency_percentile(str(run), allow_saturated=True) == pytest.approx(4, rel=HDR)


def test_a_torn_part_is_counted_lost_and_the_probe_refuses_to_measure_part_of_the_run(tmp_path: Path) -> None:
    """The analysis reads the readable parts and lists the torn one (its verdicts then INCONCLUSIVE:
    test_false_passes); the Chaos Toolkit probe, which has no verdict to qualify, raises."""
    run = _run_dir(tmp_path)
    whole = len(load_requests(run))
    (run / "requests" / "worker-9.00003.parquet").write_bytes(b"PAR1 torn")
    assert len(load_requests(run)) == whole and unreadable_parts(run) == ["worker-9.00003.parquet"]
    with pytest.raises(ValueError, match="unreadable"):
        latency_percentile(str(run))


def test_the_probe_raises_when_a_phase_has_no_successful_request(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sink = RequestSink(run, 0)
    sink.add("GET /x", 1.0, 1.0, 0.001, 503, "http")
    sink.close()
    with pytest.raises(ValueError, match="no successful requests"):
        latency_percentile(str(run))
