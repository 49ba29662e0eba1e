"""The capacity search's judgement without a load: steps from a profile, a step held or broken (an SLA,
a latency still climbing, a saturated generator), the knee with its bound and per request name, the
comparison of two searches' knees, and the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbit.bench import StepResult, judge_step, knee_of, steps_of
from drillbit.core.errors import ConfigError
from drillbit.load.profiles import Profile
from drillbit.reports.benchreport import compare_knees, render_bench
from drillbit.sla import Sla

P95 = Sla(metric="p95_ms", op="<", target=100, requirement="E12000", text="p95 < 100 ms")
ERRORS = Sla(metric="error_rate_percent", op="<=", target=0.1, requirement="E12000", text="errors")
ORDERS = Sla(metric="p99_ms", op="<", target=500, requirement="E12000", text="orders", request="POST /orders")
SLAS = {"p95": P95, "error_rate": ERRORS, "order_execution": ORDERS}


def _step(i: int, rate: float, p95: float, *, errors: float = 0.0, orders_p99: float = 50.0, first: float = 5.0,
          last: float = 5.0, saturated: bool = False, get_p95: float | None = None) -> StepResult:  # fmt: skip
    figures = {"all": {"p95_ms": p95, "error_rate_percent": errors}, "POST /orders": {"p99_ms": orders_p99,
                                                                                     "p95_ms": p95}}  # fmt: skip
    if get_p95 is not None:
        figures["GET /book/{symbol}"] = {"p95_ms": get_p95}
    step = StepResult(index=i, rate=rate, hold_s=10, achieved_rps=rate, saturated=saturated, figures=figures,
                      p95_first_ms=first, p95_last_ms=last)  # fmt: skip
    return judge_step(step, SLAS)


def test_the_steps_are_the_profiles_rising_open_model_stages() -> None:
    profile = Profile(name="s", model="open", stages=[{"duration": 10, "rate": 50}, {"duration": 20, "rate": 100}])
    assert steps_of(profile) == [(50.0, 10.0), (100.0, 20.0)]
    with pytest.raises(ConfigError, match="above the one before"):
        steps_of(Profile(name="s", model="open", stages=[{"duration": 10, "rate": 50}, {"duration": 5, "rate": 50}]))
    with pytest.raises(ConfigError, match="closed model"):
        steps_of(Profile(name="u", model="closed", stages=[{"duration": 10, "users": 5}]))


def test_a_step_holds_only_within_every_sla_settled_and_unsaturated() -> None:
    assert _step(0, 100, 20).held
    assert not _step(0, 100, 120).held and "p95" in _step(0, 100, 120).breaches[0]
    assert not _step(0, 100, 20, errors=0.5).held
    assert "POST /orders" in _step(0, 100, 20, orders_p99=800).breaches[0]
    climbing = _step(0, 100, 40, first=10, last=60)  # within the target so far, but a queue is growing
    assert not climbing.held and "still climbing" in climbing.breaches[0]
    assert not _step(0, 100, 20, saturated=True).held and _step(0, 100, 20, saturated=True).breaches == []


def test_the_knee_is_the_last_step_that_held_bounded_by_the_first_that_did_not() -> None:
    steps = [_step(0, 100, 10, get_p95=5), _step(1, 200, 30, get_p95=120), _step(2, 300, 250, get_p95=400)]
    knee, upper, by_name = knee_of(steps, 100)
    assert (knee, upper) == (200, 300)
    assert by_name == {"GET /book/{symbol}": 100, "POST /orders": 200}  # each name's own knee
    assert knee_of([_step(0, 100, 150)], 100)[:2] == (None, 100)  # not even the first step
    hiccup = _step(1, 200, 180)  # its first run broke, its second held: the second counts
    again = _step(1, 200, 30)
    again.attempt = 2
    assert knee_of([steps[0], hiccup, again, steps[2]], 100)[:2] == (200, 300)


def test_a_lower_knee_beyond_the_limit_is_a_regression_and_within_it_is_not() -> None:
    base = {"knee_rps": 400.0, "knees_by_request": {"POST /orders": 400.0}, "stopped_because": "sla"}
    same = compare_knees(base, {"knee_rps": 380.0, "knees_by_request": {"POST /orders": 380.0}}, 10)
    assert not same.regressed and same.change_percent == pytest.approx(-5.0)
    worse = compare_knees(base, {"knee_rps": 300.0, "knees_by_request": {"POST /orders": 400.0}}, 10)
    assert worse.regressed and "400 -> 300" in worse.text() and "REGRESSION" in worse.text()
    gone = compare_knees(base, {"knee_rps": None, "knees_by_request": {}}, 10)
    assert gone.regressed and "none now" in gone.reasons[0]
    with pytest.raises(ConfigError, match="--max-knee-regression"):
        compare_knees(base, base, 0)


def test_the_page_shows_the_knee_its_bound_each_step_and_escapes_names(tmp_path: Path) -> None:
    steps = [_step(0, 100, 10), _step(1, 200, 30), _step(2, 300, 250)]
    knee, upper, by_name = knee_of(steps, 100)
    b = {"profile": "step", "target": "<script>x</script>", "slas": {"p95": P95.model_dump()},
         "steps": [s.__dict__ for s in steps], "stopped_because": "sla", "knee_rps": knee, "knee_upper_rps": upper,
         "bound_rps": 100.0, "knees_by_request": by_name}  # fmt: skip
    html = render_bench(b, warmup=0.2, stable_ratio=1.5)
    assert "200 req/s" in html and "± 100 req/s" in html and "<script>x</script>" not in html
    assert html.count("<tr>") >= 4 and "p95: 250 ms, target &lt; 100" in html
