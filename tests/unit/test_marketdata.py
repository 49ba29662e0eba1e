"""The market-data analyzer and its SLAs, on scripted samples of known latency, gaps and losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.results import Measurements, Outcome
from drillbit.core.rundir import MARKETDATA, MARKETDATA_SCHEMA
from drillbit.probes.marketdata import analyze_marketdata
from drillbit.probes.samplers import write_meta
from drillbit.sla import SlaFile, load_sla_file, slas_for
from drillbit.verdicts import evaluate

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 20.0), "recovery": (20.0, 30.0), "after": (30.0, 40.0)}
SLAS = slas_for(load_sla_file(), "pod-kill", locustfile="marketdata")
MD_SLAS = {k: v for k, v in SLAS.items() if v.metric.startswith("marketdata_")}


def _write(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    path = run_dir / MARKETDATA
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = {name: None for name in MARKETDATA_SCHEMA.names}
    pq.write_table(pa.Table.from_pylist([{**empty, **r} for r in rows], schema=MARKETDATA_SCHEMA), path)
    write_meta(path, {"sampler": "marketdata", "interval_s": 0.25, "symbol": "DRILL-MD", "unseen_after_s": 10})


def _trades(start: float, end: float, latency_s: float, via: str = "stream") -> list[dict[str, Any]]:
    n = round((end - start) / 0.25)
    return [{"t": start + i * 0.25, "kind": "trade", "symbol": "DRILL-MD", "latency_s": latency_s, "via": via}
            for i in range(n)]  # fmt: skip


def _judge(run_dir: Path) -> dict[str, Any]:
    m = Measurements(fault_at=10.0, phases=PHASES, marketdata=analyze_marketdata(run_dir, phases=PHASES))
    return {v.sla: v for v in evaluate(m, MD_SLAS).verdicts}


def test_the_marketdata_locustfile_adds_the_market_data_slas_and_other_loads_do_not() -> None:
    assert {"marketdata_latency", "marketdata_lost"} <= set(SLAS)
    assert not any(s.metric.startswith("marketdata_") for s in slas_for(load_sla_file(), "pod-kill").values())
    assert SLAS["marketdata_latency"].target == 50 and SLAS["marketdata_latency"].phases == ["baseline", "after"]
    assert "order_execution" not in SLAS  # the readers place no order


def test_a_locustfile_naming_an_unknown_sla_is_reported() -> None:
    with pytest.raises(ValueError, match=r"locustfiles.marketdata.add: unknown SLA 'nope'"):
        SlaFile.model_validate({"slas": {}, "default": [], "locustfiles": {"marketdata": {"add": ["nope"]}}})


def test_per_phase_percentiles_put_a_slow_fault_window_only_in_the_fault_phase(tmp_path: Path) -> None:
    _write(tmp_path, _trades(0, 10, 0.004) + _trades(10, 20, 0.300) + _trades(20, 40, 0.006))
    m = analyze_marketdata(tmp_path, phases=PHASES)
    assert m.phases["baseline"].p95_ms == pytest.approx(4.0) and m.phases["fault"].p95_ms == pytest.approx(300.0)
    assert m.phases["after"].trades == 40
    verdicts = _judge(tmp_path)
    assert verdicts["marketdata_latency"].verdict is Outcome.PASS and verdicts["marketdata_latency"].measured == 6.0
    assert verdicts["marketdata_lost"].verdict is Outcome.PASS


def test_slow_market_data_after_the_fault_fails_the_latency_sla(tmp_path: Path) -> None:
    _write(tmp_path, _trades(0, 30, 0.004) + _trades(30, 40, 0.080))
    assert _judge(tmp_path)["marketdata_latency"].verdict is Outcome.FAIL


def test_unseen_probe_trades_are_infinitely_late_not_left_out(tmp_path: Path) -> None:
    """A feed that shows nothing must not look fast: 10 % of the baseline's trades never seen -> p95 infinite."""
    unseen = [{"t": 0.1 + i, "kind": "unseen", "symbol": "DRILL-MD", "count": 1} for i in range(4)]
    _write(tmp_path, _trades(0, 10, 0.004) + unseen + _trades(10, 40, 0.004))
    m = analyze_marketdata(tmp_path, phases=PHASES)
    assert m.phases["baseline"].p95_ms is None and m.phases["baseline"].p50_ms == pytest.approx(4.0)
    verdicts = _judge(tmp_path)
    assert verdicts["marketdata_latency"].verdict is Outcome.FAIL
    assert verdicts["marketdata_lost"].verdict is Outcome.FAIL and verdicts["marketdata_lost"].measured == 4


def test_a_gap_filled_from_the_history_is_not_lost_but_an_unfilled_one_is_inconclusive(tmp_path: Path) -> None:
    gaps = [{"t": 12.0, "kind": "gap", "symbol": "AAA", "seq": 9, "count": 3, "recovered": 3},
            {"t": 14.0, "kind": "gap", "symbol": "BBB", "seq": 5, "count": 2, "recovered": None}]  # fmt: skip
    _write(tmp_path, _trades(0, 40, 0.004) + gaps)
    m = analyze_marketdata(tmp_path, phases=PHASES)
    fault = m.phases["fault"]
    figures = (fault.gaps, fault.gap_trades, fault.gap_trades_recovered, fault.lost, fault.unfilled_gaps)
    assert figures == (2, 5, 3, 0, 1)
    assert _judge(tmp_path)["marketdata_lost"].verdict is Outcome.INCONCLUSIVE


def test_a_trade_missing_from_the_history_too_is_lost(tmp_path: Path) -> None:
    gap = {"t": 31.0, "kind": "gap", "symbol": "AAA", "seq": 9, "count": 3, "recovered": 2}
    _write(tmp_path, [*_trades(0, 40, 0.004), gap])
    verdicts = _judge(tmp_path)
    assert verdicts["marketdata_lost"].verdict is Outcome.FAIL and verdicts["marketdata_lost"].measured == 1


def test_no_probe_trade_in_a_phase_is_inconclusive_with_the_failed_orders_counted(tmp_path: Path) -> None:
    errors = [{"t": 1.0 + i, "kind": "order_error", "symbol": "DRILL-MD", "detail": "buy: HTTP 503"} for i in range(5)]
    _write(tmp_path, errors + _trades(10, 40, 0.004))
    verdict = _judge(tmp_path)["marketdata_latency"]
    assert verdict.verdict is Outcome.INCONCLUSIVE and "5 probe order(s) failed" in (verdict.reason or "")


def test_without_the_probe_the_market_data_slas_are_inconclusive_with_the_reason() -> None:
    m = Measurements(fault_at=10.0, unmeasured={"marketdata": "no market-data probe ran"})
    verdicts = evaluate(m, MD_SLAS).verdicts
    assert {v.verdict for v in verdicts} == {Outcome.INCONCLUSIVE}
    assert all("no market-data probe ran" in (v.reason or "") for v in verdicts)
