"""SLAs judged from the target's own PromQL figures: beside drillbit's, never a PASS without a number."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drillbit.core.measurements import PromqlFigure, PromqlMeasurement
from drillbit.core.results import Measurements, Outcome
from drillbit.sla import Sla
from drillbit.verdicts import evaluate

ERRORS = Sla(metric="promql_max", promql="error_ratio", op="<=", target=0.001, requirement="E12000",
             text="the platform's own 5xx ratio <= 0.1 %")  # fmt: skip


def _m(**figure: object) -> Measurements:
    fig = PromqlFigure.model_validate({"query": "sum(rate(x[1m]))", "measured": True, **figure})
    return Measurements(fault_at=1.0, promql=PromqlMeasurement(prometheus_url="http://127.0.0.1:9090", start=0.0,
                                                               end=60.0, step=1.0, figures={"error_ratio": fig}))


def test_a_promql_sla_passes_and_fails_on_the_figure_it_names() -> None:
    (ok,) = evaluate(_m(value=0.0, min=0.0, max=0.0005), {"e": ERRORS}).verdicts
    (bad,) = evaluate(_m(value=0.0, min=0.0, max=0.2), {"e": ERRORS}).verdicts
    assert (ok.verdict, bad.verdict, bad.measured) == (Outcome.PASS, Outcome.FAIL, 0.2)
    assert "the target's own metrics" in ok.how and "maximum over the drill" in ok.how


def test_an_unmeasurable_query_is_inconclusive_with_its_reason_never_zero() -> None:
    (v,) = evaluate(_m(measured=False, error="PromQL 'x': no series"), {"e": ERRORS}).verdicts
    assert v.verdict is Outcome.INCONCLUSIVE and v.measured is None and "no series" in (v.reason or "")


def test_without_a_prometheus_the_promql_sla_is_inconclusive() -> None:
    m = Measurements(fault_at=1.0, unmeasured={"promql": "the target names no Prometheus"})
    (v,) = evaluate(m, {"e": ERRORS}).verdicts
    assert v.verdict is Outcome.INCONCLUSIVE and v.reason == "the target names no Prometheus"


def test_a_query_name_the_experiment_lacks_is_inconclusive() -> None:
    other = ERRORS.model_copy(update={"promql": "latency"})
    (v,) = evaluate(_m(value=0.0, max=0.0), {"e": other}).verdicts
    assert v.verdict is Outcome.INCONCLUSIVE and "no query named 'latency'" in (v.reason or "")


def test_a_promql_sla_must_name_its_query() -> None:
    with pytest.raises(ValidationError, match="promql: required"):
        Sla(metric="promql_value", op="<", target=1, requirement="E12000", text="x")
