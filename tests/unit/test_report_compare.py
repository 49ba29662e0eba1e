"""Regression verdicts (drillbit.reports.compare) and trend rows (drillbit.reports.trend) on summaries."""

from __future__ import annotations

from drillbit.core.results import LatencyStats, Outcome
from drillbit.reports.compare import compare_summaries
from drillbit.reports.summary import ExperimentRef, MeasurementSummary, RunSummary, Summary
from drillbit.reports.trend import trend_rows


def _lat(p95: float | None) -> LatencyStats:
    return LatencyStats(phase="x", window=(0.0, 10.0), count=100, ok=100, errors=0, not_sent=0, error_rate=0.0,
                        error_rate_percent=0.0, throughput_rps=10.0, achieved_rps=10.0, intended_rps=10.0, p50_ms=1.0,
                        p95_ms=p95, p99_ms=None, max_ms=None, uncorrected_p50_ms=None, uncorrected_p95_ms=None,
                        uncorrected_p99_ms=None, uncorrected_max_ms=None, successful_p50_ms=None,
                        successful_p95_ms=None, successful_p99_ms=None, closed_model=False)  # fmt: skip


def _summary(run_id: str, p95: dict[str, float | None], *, saturated: bool = False, started: float = 0.0,
             outcome: Outcome | None = Outcome.PASS,
             experiment: str = "experiments/pod-kill.yaml") -> Summary:  # fmt: skip
    m = MeasurementSummary(latency={k: _lat(v) for k, v in p95.items()}, load_saturated=saturated)
    run = RunSummary(id=run_id, started_at=started, experiment=ExperimentRef(path=experiment))
    return Summary(run=run, outcome=outcome, exit_code=0, measurements=m)


def test_p95_worse_by_more_than_the_limit_in_any_phase_is_a_regression() -> None:
    baseline = _summary("a", {"baseline": 10.0, "fault": 20.0})
    cmp = compare_summaries(baseline, _summary("b", {"baseline": 10.5, "fault": 23.0}))
    assert cmp.verdict == "REGRESSION" and cmp.exit_code == 1
    assert cmp.reasons == ["fault: p95 20.00 ms -> 23.00 ms (+15.0 % > 10 %)"]


def test_p95_within_the_limit_is_ok() -> None:
    cmp = compare_summaries(_summary("a", {"all": 10.0}), _summary("b", {"all": 10.9}))
    assert (cmp.verdict, cmp.exit_code) == ("OK", 0)


def test_a_faster_candidate_is_ok() -> None:
    assert compare_summaries(_summary("a", {"all": 10.0}), _summary("b", {"all": 5.0})).verdict == "OK"


def test_no_phase_in_common_is_inconclusive() -> None:
    cmp = compare_summaries(_summary("a", {"baseline": 10.0}), _summary("b", {"after": 10.0}))
    assert (cmp.verdict, cmp.exit_code) == ("INCONCLUSIVE", 3)


def test_a_saturated_generator_makes_an_ok_comparison_inconclusive() -> None:
    cmp = compare_summaries(_summary("a", {"all": 10.0}), _summary("b", {"all": 10.0}, saturated=True))
    assert cmp.verdict == "INCONCLUSIVE" and "saturated in the candidate run" in cmp.reasons[0]


def test_trend_rows_are_ordered_by_start_time_with_their_outcomes() -> None:
    rows = trend_rows([_summary("late", {"all": 12.0}, started=200.0, outcome=Outcome.FAIL),
                       _summary("early", {"all": 10.0}, started=100.0),
                       _summary("cut", {}, started=150.0, outcome=None)])  # fmt: skip
    assert [(r.run_id, r.outcome, r.p95_ms) for r in rows] == [
        ("early", "PASS", 10.0), ("cut", "NO VERDICT", None), ("late", "FAIL", 12.0)]  # fmt: skip
