"""The RTO analyzer on synthetic availability samples whose truth is exact."""

import math

import numpy as np
import pandas as pd
import pytest

from probes.availability import analyze_rto


def samples(pattern: str, interval: float = 0.1, latency: float = 0.002) -> pd.DataFrame:
    """One probe per character: '.' ok, 'x' failed (fast error)."""
    n = len(pattern)
    t = 1000.0 + np.arange(n) * interval
    ok = np.array([c == "." for c in pattern])
    return pd.DataFrame(
        {
            "t": t,
            "ok": ok,
            "latency": np.full(n, latency),
            "status": np.where(ok, 200, 503),
            "error": [None if o else "http" for o in ok],
        }
    )


def test_rto_is_the_first_good_probe_of_the_stable_run() -> None:
    s = samples("....." + "xxxxx" + "." * 30)  # fault at probe 5, first good probe at 10
    r = analyze_rto(s, fault_at=1000.5, stability_window=1.0)
    assert r.recovered and r.rto_upper_s == pytest.approx(0.5 + 0.001)
    assert r.rto_s == pytest.approx(0.45 + 0.001) and r.error_bound_s == pytest.approx(0.05)
    assert r.detect_s == pytest.approx(0.001) and r.failed_probes == 5
    assert r.downtime_s == pytest.approx(0.5)


def test_a_flapping_recovery_restarts_the_stability_window() -> None:
    s = samples("xxx" + "....." + "x" + "." * 30)
    r = analyze_rto(s, fault_at=1000.0, stability_window=1.0)
    assert r.rto_upper_s == pytest.approx(0.9 + 0.001)  # the run of 5 oks was too short: recovery after probe 8


def test_an_error_rate_threshold_tolerates_sparse_failures() -> None:
    s = samples("xxx" + ".........x" * 4)
    strict = analyze_rto(s, fault_at=1000.0, stability_window=1.0)
    lenient = analyze_rto(s, fault_at=1000.0, stability_window=1.0, max_error_rate=0.15)
    assert strict.recovered is False
    assert lenient.rto_upper_s == pytest.approx(0.3 + 0.001)


def test_no_failure_means_zero_rto_with_its_bound() -> None:
    r = analyze_rto(samples("." * 20), fault_at=1000.0)
    assert r.rto_s == 0.0 and r.detect_s is None and r.error_bound_s == pytest.approx(0.1)


def test_samples_ending_before_a_stable_run_give_no_number() -> None:
    r = analyze_rto(samples("xxxx" + "." * 5), fault_at=1000.0, stability_window=1.0)
    assert r.recovered is False and r.rto_s is None


def test_slow_answers_count_as_failures_when_asked() -> None:
    s = samples("." * 20)
    s.loc[2:6, "latency"] = 0.8  # a freeze: answered late
    r = analyze_rto(s, fault_at=1000.0, stability_window=0.5, slow_after=0.25)
    assert r.failed_probes == 5 and r.rto_upper_s == pytest.approx(0.7 + 0.001)
    assert not math.isnan(r.error_bound_s)


def test_no_samples_after_the_fault_raises() -> None:
    with pytest.raises(ValueError, match="no availability samples"):
        analyze_rto(samples("...."), fault_at=2000.0)
