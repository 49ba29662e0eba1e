"""The latency analyzer against synthetic request records with known percentiles."""

import numpy as np
import pytest

from probes.latency import Requests, analyze_latency


def reqs(latency: np.ndarray, intended: np.ndarray, lateness: float | np.ndarray = 0.0, status: int = 200) -> Requests:
    n = len(latency)
    return Requests(
        intended=intended,
        start=intended + lateness,
        latency=latency,
        status=np.full(n, status, dtype=np.int16),
        error=np.zeros(n, dtype=bool),
    )


def test_percentiles_match_numpy_within_hdr_precision() -> None:
    rng = np.random.default_rng(1)
    lat = rng.lognormal(mean=-4.0, sigma=0.8, size=200_000)  # ~18 ms median
    r = reqs(lat, np.arange(lat.size) / 1000.0)
    stats = analyze_latency(r)["all"]
    for p, got in ((50, stats.p50_ms), (95, stats.p95_ms), (99, stats.p99_ms)):
        want = float(np.percentile(lat, p)) * 1000
        assert got == pytest.approx(want, rel=0.002)
    assert stats.max_ms == pytest.approx(lat.max() * 1000, rel=0.002)


def test_corrected_latency_counts_the_wait_before_sending() -> None:
    intended = np.arange(1000) / 100.0
    r = reqs(np.full(1000, 0.010), intended, lateness=np.where(np.arange(1000) >= 900, 0.5, 0.0))
    s = analyze_latency(r)["all"]
    assert s.uncorrected_p99_ms == pytest.approx(10, rel=0.002)
    assert s.p99_ms == pytest.approx(510, rel=0.002)  # the last 10 % waited 0.5 s before being sent


def test_phases_split_by_intended_time_with_rates_and_errors() -> None:
    intended = np.arange(2000) / 100.0  # 100 req/s for 20 s
    lat = np.where(intended < 10, 0.005, 0.050)
    r = reqs(lat, intended)
    status = r.status.copy()
    status[1500:1600] = 503
    r = Requests(r.intended, r.start, r.latency, status, r.error)
    out = analyze_latency(r, {"baseline": (0.0, 10.0), "fault": (10.0, 20.0)})
    assert out["baseline"].count == 1000 and out["baseline"].p95_ms == pytest.approx(5, rel=0.002)
    assert out["fault"].p95_ms == pytest.approx(50, rel=0.002)
    assert out["fault"].error_rate == pytest.approx(0.1)
    assert out["baseline"].intended_rps == pytest.approx(100)
    assert out["fault"].throughput_rps == pytest.approx(90)


def test_closed_model_records_have_no_intended_time() -> None:
    start = np.arange(100) / 10.0
    r = Requests(
        np.full(100, np.nan), start, np.full(100, 0.02), np.full(100, 200, dtype=np.int16), np.zeros(100, bool)
    )
    s = analyze_latency(r)["all"]
    assert s.intended_rps is None and s.p50_ms == s.uncorrected_p50_ms == pytest.approx(20, rel=0.002)


def test_no_records_raise() -> None:
    empty = np.array([], dtype=float)
    with pytest.raises(ValueError, match="no request records"):
        analyze_latency(Requests(empty, empty, empty, empty.astype(np.int16), empty.astype(bool)))
