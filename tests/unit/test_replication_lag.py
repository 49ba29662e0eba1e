"""Replication lag: the sampler's rows (a failed read is a gap, never a lag of 0), the wait for a breach,
the analyzer against scripted lags of known shape (a link slowed at t=10 s, the lag growing a
second per second, healed at 85 s), and the verdicts (detection, the RPO outside the fault, catch-up;
a failed read or a peak within the sampling bound of the target is INCONCLUSIVE, never PASS)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.clock import Clock
from drillbit.core.errors import EnvironmentFailure
from drillbit.core.results import Measurements, Outcome
from drillbit.core.rundir import REPLICATION_LAG, REPLICATION_LAG_SCHEMA
from drillbit.probes.replication import ReplicationLagSampler, analyze_replication_lag, wait_lag
from drillbit.probes.samplers import write_meta
from drillbit.sla import load_sla_file, slas_for
from drillbit.targets.sandbox.replication import lsn
from drillbit.verdicts import evaluate

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 100.0), "recovery": (100.0, 105.0), "after": (105.0, 115.0)}
LAG_SLAS = {k: v for k, v in slas_for(load_sla_file(), "replication-lag").items() if k.startswith("replication_")}


def _truth(t: float) -> float:
    """Slowed at 12 s (the lag starts growing), healed at 85 s, caught up at once."""
    return t - 12.0 if 12.0 <= t < 85.0 else 0.0


def _write(run_dir: Path, rows: list[dict[str, Any]], interval: float = 1.0) -> None:
    path = run_dir / REPLICATION_LAG
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {"member": "region-b", "lag_bytes": 0, "ok": True, "error": None, "read_s": 0.01}
    pq.write_table(pa.Table.from_pylist([{**base, **r} for r in rows], schema=REPLICATION_LAG_SCHEMA), path)
    write_meta(path, {"sampler": "replication_lag", "interval_s": interval})


def _scripted(run_dir: Path, *, fail_at: tuple[float, ...] = (), truth: Any = _truth) -> None:
    rows = []
    for i in range(115):
        t = float(i)
        if t in fail_at:
            rows.append({"t": t, "lag_s": float("nan"), "lag_bytes": None, "ok": False, "error": "OperationalError"})
        else:
            lag = truth(t)
            rows.append({"t": t, "lag_s": lag, "lag_bytes": int(lag * 80_000)})
    _write(run_dir, rows)


def _measure(run_dir: Path) -> Measurements:
    lag = analyze_replication_lag(run_dir, phases=PHASES, fault_at=10.0, target_s=60.0, healed_at=85.0)
    return Measurements(fault_at=10.0, phases=PHASES, replication_lag=lag)


def test_lsns_are_byte_positions() -> None:
    assert lsn("0/3000000") == 0x3000000
    assert lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn("1/0") - lsn("0/FFFFFFFF") == 1


def test_the_analyzer_gives_each_phase_its_peak_the_breach_and_the_catch_up(tmp_path: Path) -> None:
    _scripted(tmp_path)
    r = _measure(tmp_path).replication_lag
    assert r is not None
    assert {k: p.peak_s for k, p in r.phases.items()} == {"baseline": 0.0, "fault": 72.0, "recovery": 0.0,
                                                          "after": 0.0}  # fmt: skip
    assert r.phases["fault"].peak_bytes == 72 * 80_000 and r.phases["fault"].peak_member == "region-b"
    assert r.breached_at == 73.0 and r.breached_after_fault_s == 63.0  # the first sample above 60 s
    assert r.caught_up_at == 85.0 and r.caught_up_s == 0.0
    assert r.error_bound_s == pytest.approx(1.01) and r.failed == 0 and r.samples == 115


def test_the_lag_slas_pass_on_a_detected_breach_healed_in_time(tmp_path: Path) -> None:
    _scripted(tmp_path)
    verdicts = {v.sla: v for v in evaluate(_measure(tmp_path), LAG_SLAS).verdicts}
    assert {k: v.verdict for k, v in verdicts.items()} == {
        "replication_lag_detected": Outcome.PASS, "replication_lag": Outcome.PASS,
        "replication_catch_up": Outcome.PASS}  # fmt: skip
    assert verdicts["replication_lag_detected"].measured == 72.0


def test_a_lag_that_never_passes_the_rpo_fails_detection(tmp_path: Path) -> None:
    _scripted(tmp_path, truth=lambda t: min(_truth(t), 40.0))
    verdicts = {v.sla: v.verdict for v in evaluate(_measure(tmp_path), LAG_SLAS).verdicts}
    assert verdicts["replication_lag_detected"] is Outcome.FAIL


def test_a_replica_behind_the_rpo_after_the_fault_fails(tmp_path: Path) -> None:
    _scripted(tmp_path, truth=lambda t: t - 12.0 if t >= 12.0 else 0.0)  # never healed
    m = _measure(tmp_path)
    verdicts = {v.sla: v for v in evaluate(m, LAG_SLAS).verdicts}
    assert verdicts["replication_lag"].verdict is Outcome.FAIL and verdicts["replication_lag"].measured == 102.0
    assert verdicts["replication_catch_up"].verdict is Outcome.INCONCLUSIVE
    assert "not caught up" in (verdicts["replication_catch_up"].reason or "")


def test_a_failed_read_outside_the_fault_leaves_the_rpo_sla_inconclusive_not_passed(tmp_path: Path) -> None:
    _scripted(tmp_path, fail_at=(108.0,))
    verdicts = {v.sla: v for v in evaluate(_measure(tmp_path), LAG_SLAS).verdicts}
    lag = verdicts["replication_lag"]
    assert lag.verdict is Outcome.INCONCLUSIVE and "1 lag read(s)" in (lag.reason or ""), lag
    assert verdicts["replication_lag_detected"].verdict is Outcome.PASS  # a failed read hides no breach seen


def test_a_peak_within_the_sampling_bound_of_the_rpo_is_inconclusive(tmp_path: Path) -> None:
    _scripted(tmp_path, truth=lambda t: 59.5 if t >= 106.0 else _truth(t))
    lag = {v.sla: v for v in evaluate(_measure(tmp_path), LAG_SLAS).verdicts}["replication_lag"]
    assert lag.measured == 59.5 and lag.verdict is Outcome.INCONCLUSIVE and "sampling bound" in (lag.reason or "")


def test_without_lag_samples_the_lag_slas_are_inconclusive_with_the_reason() -> None:
    m = Measurements(fault_at=10.0, unmeasured={"replication_lag": "the target reads no replication lag"})
    verdicts = evaluate(m, LAG_SLAS).verdicts
    assert {v.verdict for v in verdicts} == {Outcome.INCONCLUSIVE}
    assert all("reads no replication lag" in (v.reason or "") for v in verdicts)


class _Source:
    """A target's lag reads, scripted: each call returns the next answer (an exception is raised)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls = 0

    def replication_lag(self) -> list[dict[str, Any]]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return [{"member": "region-b", "lag_s": answer, "lag_bytes": int(answer * 1000), "ok": True, "error": None}]


def test_the_sampler_records_a_failed_read_as_a_gap_never_a_zero(tmp_path: Path) -> None:
    source = _Source([0.5, EnvironmentFailure("no primary answered"), 2.5])
    deadline = time.monotonic() + 10
    with ReplicationLagSampler(source, tmp_path, clock=Clock(), interval=0.05):
        while source.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    table = pq.read_table(tmp_path / REPLICATION_LAG).to_pylist()
    assert [r["ok"] for r in table[:3]] == [True, False, True]
    assert table[1]["member"] is None and "no primary answered" in table[1]["error"]
    assert table[0]["lag_s"] == 0.5 and table[2]["lag_s"] == 2.5 and table[0]["read_s"] >= 0


def test_waiting_for_a_breach_returns_at_the_first_read_above_it() -> None:
    source = _Source([1.0, EnvironmentFailure("no primary"), 30.0, 61.0, 90.0])
    got = wait_lag(source.replication_lag, 60.0, 10.0, clock=Clock(), poll_s=0.01)
    assert (got["above"], got["lag_s"], got["member"], got["unreadable"]) == (True, 61.0, "region-b", 1)
    assert source.calls == 4 and got["at"] is not None


def test_waiting_for_a_breach_that_never_comes_times_out_with_the_peak() -> None:
    got = wait_lag(_Source([1.0, 12.0, 3.0]).replication_lag, 60.0, 0.2, clock=Clock(), poll_s=0.01)
    assert (got["above"], got["at"], got["peak_s"]) == (False, None, 12.0)
