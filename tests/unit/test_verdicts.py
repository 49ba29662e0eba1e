"""Verdicts: PASS only when measured, holding and trustworthy; a breach is FAIL; doubt is INCONCLUSIVE."""

from __future__ import annotations

import pytest

from drillbit.core.results import (
    ExperimentMeasurement,
    Fault,
    LatencyMeasurement,
    LatencyStats,
    Measurements,
    Outcome,
    RtoMeasurement,
)
from drillbit.sla import Sla
from drillbit.verdicts import evaluate

RTO = Sla(metric="rto_s", op="<", target=900, requirement="R9.4", text="RTO < 15 min")
P95 = Sla(metric="p95_ms", op="<", target=100, requirement="E12000", text="p95", phases=["baseline", "after"])
ERRORS = Sla(metric="errors", op="==", target=0, requirement="R1.4", text="no failed request")


def _rto(rto_s: float | None, recovered: bool = True, observed_until_s: float = 30.0) -> RtoMeasurement:
    return RtoMeasurement(
        fault_at=1.0, recovered=recovered, rto_s=rto_s, rto_lower_s=rto_s, rto_upper_s=rto_s,
        recovered_at=None if rto_s is None else 1.0 + rto_s, detect_s=0.2, downtime_s=rto_s or 0, outages=[],
        failed_probes=10, probes=300, interval_s=0.1, error_bound_s=0.1, stability_window_s=5.0, max_error_rate=0.0,
        slow_after_s=1.0, timeout_s=1.0, observed_until_s=observed_until_s, until=None, first_failed_at=1.0,
        method="synthetic transaction",
    )  # fmt: skip


def _phase(p95: float | None, errors: int = 0, ok: int = 100) -> LatencyStats:
    return LatencyStats(
        phase="x", window=(0.0, 10.0), count=ok + errors, ok=ok, errors=errors, not_sent=0,
        error_rate=errors / (ok + errors) if ok + errors else 0.0, error_rate_percent=None, throughput_rps=10.0,
        achieved_rps=10.0, intended_rps=10.0, p50_ms=p95, p95_ms=p95, p99_ms=p95, max_ms=p95,
        uncorrected_p50_ms=p95, uncorrected_p95_ms=p95, uncorrected_p99_ms=p95, uncorrected_max_ms=p95,
        successful_p50_ms=p95, successful_p95_ms=p95, successful_p99_ms=p95, closed_model=False,
    )  # fmt: skip


def _measurements(*, rto_s: float | None = 3.0, landed: bool = True, saturated: bool | None = False,
                  p95: tuple[float, float] = (10.0, 12.0), errors: int = 0) -> Measurements:  # fmt: skip
    fault = Fault(activity="kill", action="drillbit.faults.kill_replicas", injected_at=1.0, landed=landed,
                  error=None if landed else "selector matched nothing")  # fmt: skip
    latency = LatencyMeasurement(
        phases={"baseline": _phase(p95[0]), "fault": _phase(900.0, errors), "after": _phase(p95[1]),
                "all": _phase(900.0, errors)},
        generator_saturated=saturated, saturation_reasons=["busy 99 %"] if saturated else [], generator_complete=True,
    )  # fmt: skip
    return Measurements(fault_at=1.0, faults=[fault], rto=_rto(rto_s), latency=latency)


def test_measured_and_within_target_passes() -> None:
    result = evaluate(_measurements(), {"rto": RTO, "p95": P95})
    assert result.outcome is Outcome.PASS and result.exit_code == 0
    assert [v.verdict for v in result.verdicts] == [Outcome.PASS, Outcome.PASS]
    assert result.verdicts[0].measured == 3.0


def test_latency_is_judged_on_the_worst_of_the_named_phases_only() -> None:
    """The fault phase's 900 ms is outside the SLA's window; the worst of baseline/after counts."""
    result = evaluate(_measurements(p95=(10.0, 42.0)), {"p95": P95})
    assert result.verdicts[0].measured == 42.0
    assert result.verdicts[0].verdict is Outcome.PASS


def test_a_breach_fails_and_says_measured_against_target() -> None:
    result = evaluate(_measurements(p95=(10.0, 150.0)), {"p95": P95})
    assert result.outcome is Outcome.FAIL and result.exit_code == 1
    assert "measured 150 ms, target < 100 ms" in (result.verdicts[0].reason or "")


def test_a_fault_that_did_not_land_makes_every_verdict_inconclusive_never_pass() -> None:
    """What was measured is not what was planned: no row of the report may say PASS."""
    result = evaluate(_measurements(landed=False), {"rto": RTO, "p95": P95})
    assert [v.verdict for v in result.verdicts] == [Outcome.INCONCLUSIVE, Outcome.INCONCLUSIVE]
    assert "did not land" in (result.verdicts[0].reason or "")
    assert result.outcome is Outcome.INCONCLUSIVE and result.exit_code == 3


def test_a_saturated_generator_makes_latency_inconclusive() -> None:
    result = evaluate(_measurements(saturated=True), {"rto": RTO, "p95": P95})
    rto, p95 = result.verdicts
    assert rto.verdict is Outcome.PASS
    assert p95.verdict is Outcome.INCONCLUSIVE and "saturated" in (p95.reason or "")


def test_a_breach_a_saturated_generator_measured_says_the_generator_saturated_not_that_the_service_is_slow() -> None:
    """Its own delays are in the figure (1,000 users on a 2-core box): INCONCLUSIVE naming the generator, never
    FAIL blaming the service, and never PASS."""
    result = evaluate(_measurements(saturated=True, p95=(10.0, 150.0)), {"p95": P95, "rto": RTO})
    p95 = result.verdicts[0]
    assert p95.verdict is Outcome.INCONCLUSIVE and p95.measured == 150.0
    assert "load generator was saturated" in (p95.reason or "") and "not evidence that the service is slow" in (
        p95.reason or "")
    assert result.outcome is Outcome.INCONCLUSIVE and result.exit_code == 3


def test_a_breach_stays_fail_when_the_generator_kept_up() -> None:
    result = evaluate(_measurements(saturated=False, p95=(10.0, 150.0)), {"p95": P95})
    assert result.verdicts[0].verdict is Outcome.FAIL and result.outcome is Outcome.FAIL


def test_no_sustained_recovery_is_inconclusive_with_the_reason() -> None:
    m = _measurements().model_copy(update={"rto": _rto(None, recovered=False)})
    verdict = evaluate(m, {"rto": RTO}).verdicts[0]
    assert verdict.verdict is Outcome.INCONCLUSIVE and verdict.measured is None
    assert "no sustained recovery" in (verdict.reason or "")


def test_a_section_that_was_not_measured_is_inconclusive_and_says_why() -> None:
    m = Measurements(fault_at=1.0, faults=[], unmeasured={"rto": "no availability samples"})
    verdict = evaluate(m, {"rto": RTO}).verdicts[0]
    assert verdict.verdict is Outcome.INCONCLUSIVE and verdict.reason == "no availability samples"


def test_errors_are_counted_over_the_named_phases() -> None:
    sla = ERRORS.model_copy(update={"phases": ["baseline", "fault", "after"]})
    result = evaluate(_measurements(errors=3), {"errors": sla})
    assert result.verdicts[0].measured == 3
    assert result.outcome is Outcome.FAIL


def test_an_interrupted_drill_is_never_pass() -> None:
    result = evaluate(_measurements(), {"rto": RTO}, interrupted=True)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert any("interrupted" in r for r in result.inconclusive_reasons)


def test_a_phase_with_no_answered_request_makes_its_verdict_inconclusive() -> None:
    m = _measurements()
    assert m.latency is not None
    m.latency.phases["after"] = _phase(None, ok=0)
    verdict = evaluate(m, {"p95": P95}).verdicts[0]
    assert verdict.verdict is Outcome.INCONCLUSIVE and "no answered request in phase(s) after" in (verdict.reason or "")


def test_no_recovery_for_longer_than_the_target_fails() -> None:
    m = _measurements().model_copy(update={"rto": _rto(None, recovered=False, observed_until_s=1000.0)})
    verdict = evaluate(m, {"rto": RTO}).verdicts[0]
    assert verdict.verdict is Outcome.FAIL and verdict.measured == 1000.0


def test_a_deviated_steady_state_puts_the_drill_in_doubt() -> None:
    m = _measurements().model_copy(update={"experiment": ExperimentMeasurement(deviated=True)})
    result = evaluate(m, {"rto": RTO})
    assert result.outcome is Outcome.INCONCLUSIVE and any("deviated" in r for r in result.inconclusive_reasons)


def test_an_unknown_generator_state_makes_latency_inconclusive() -> None:
    result = evaluate(_measurements(saturated=None), {"rto": RTO, "p95": P95})
    rto, p95 = result.verdicts
    assert rto.verdict is Outcome.PASS and p95.verdict is Outcome.INCONCLUSIVE


def test_an_rto_whose_error_bound_straddles_the_target_is_inconclusive_never_pass() -> None:
    """899.95 s ± 0.1 s against < 900 s: the estimate passes, the truth may not."""
    rto = _rto(899.95).model_copy(update={"error_bound_s": 0.1})
    verdict = evaluate(_measurements().model_copy(update={"rto": rto}), {"rto": RTO}).verdicts[0]
    assert verdict.verdict is Outcome.INCONCLUSIVE and "straddles the target < 900 s" in (verdict.reason or "")
    clear = _rto(899.85).model_copy(update={"error_bound_s": 0.1})
    assert evaluate(_measurements().model_copy(update={"rto": clear}), {"rto": RTO}).verdicts[0].verdict is Outcome.PASS


NO_OUTAGE = Sla(metric="downtime_s", op="<", target=0.5, requirement="R1.5", text="downtime < 0.5 s")


@pytest.mark.parametrize(("downtime", "bound", "outcome"), [
    (0.3, 0.12, Outcome.PASS), (0.42, 0.12, Outcome.INCONCLUSIVE), (0.55, 0.12, Outcome.FAIL),
    (0.3, None, Outcome.INCONCLUSIVE), (0.6, None, Outcome.FAIL),
])  # fmt: skip
def test_downtime_is_judged_with_its_stated_error_bound(downtime: float, bound: float | None, outcome: Outcome) -> None:
    """Within the bound of the target: INCONCLUSIVE; no bound (an outage still open): a floor, FAIL if it breaches."""
    rto = _rto(3.0).model_copy(update={"downtime_s": downtime, "downtime_error_bound_s": bound})
    verdict = evaluate(_measurements().model_copy(update={"rto": rto}), {"no_outage": NO_OUTAGE}).verdicts[0]
    assert verdict.verdict is outcome, verdict
