"""The RPO analyzer on synthetic heartbeats whose truth is exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.provider.python import run_python_activity, validate_python_activity

from drillbit.core.rundir import EVENTS, HEARTBEAT, HEARTBEAT_READBACK, HEARTBEAT_READBACK_SCHEMA, HEARTBEAT_SCHEMA
from drillbit.probes.rpo import analyze_rpo, lost_writes, rpo_report, rpo_seconds


def ctk(module: str, func: str, **arguments: object) -> object:
    """Run a probe the way chaostoolkit-lib runs a python provider (validated first)."""
    activity = {"type": "probe", "name": func,
                "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}  # fmt: skip
    validate_python_activity(activity)
    return run_python_activity(activity, {}, {})


def heartbeats(outcomes: str) -> pd.DataFrame:
    """One write per character, seq 1.., sent every 0.1 s from 100.1: a acked (+10 ms), f failed, i indeterminate."""
    kinds = {"a": "acked", "f": "failed", "i": "indeterminate"}
    rows = []
    for n, c in enumerate(outcomes, start=1):
        sent = 100.0 + n * 0.1
        rows.append({"seq": n, "sent": sent, "acked": sent + 0.01 if c == "a" else math.nan, "outcome": kinds[c],
                     "error": None if c == "a" else "x"})  # fmt: skip
    return pd.DataFrame(rows)


def readback(counts: dict[int, int]) -> pd.DataFrame:
    return pd.DataFrame({"seq": list(counts), "count": list(counts.values())})


def test_lost_indeterminate_and_unexpectedly_present_are_kept_apart() -> None:
    hb = heartbeats("aaaaiifa")  # seqs 1..8
    back = readback({1: 1, 2: 1, 5: 1, 7: 1, 8: 1})  # 3, 4 lost; 5 indet present; 6 indet absent; 7 failed but there
    r = analyze_rpo(hb, back, fault_at=101.0)
    assert r.lost == 2 and r.lost_seqs == [3, 4] and r.lost_after_fault == 0
    assert r.window_s == pytest.approx(101.0 - 100.31)
    assert r.lost_span_s == pytest.approx(0.1)
    assert (r.indeterminate, r.indeterminate_present, r.indeterminate_absent) == (2, 1, 1)
    assert r.indeterminate_present_seqs == [5] and r.indeterminate_absent_seqs == [6]
    assert r.failed == 1 and r.unexpectedly_present == [7]
    assert r.writes == 8 and r.acked == 5 and r.acked_before_fault == 5


def test_indeterminate_writes_are_never_counted_as_lost() -> None:
    r = analyze_rpo(heartbeats("aaiiiiaa"), readback({1: 1, 2: 1, 7: 1, 8: 1}), fault_at=100.25)
    assert r.lost == 0 and r.window_s == 0.0 and r.lost_seqs == []
    assert r.indeterminate == 4 and r.indeterminate_absent == 4


def test_duplicates_and_strangers_are_reported() -> None:
    r = analyze_rpo(heartbeats("aaa"), readback({1: 1, 2: 2, 3: 1, 99: 1}), fault_at=100.5)
    assert r.duplicates == [2] and r.unknown_present == [99] and r.lost == 0 and r.window_s == 0.0


def test_a_write_lost_after_the_fault_is_a_split_brain_symptom_and_the_window_is_never_negative() -> None:
    # acknowledged by a primary that was already cut off (after the fault), then lost in the failover:
    # the window was fault - ack = -0.06 s before (a negative RPO passes any "RPO < 60 s")
    r = analyze_rpo(heartbeats("aaaaaa"), readback({1: 1, 2: 1, 3: 1, 4: 1}), fault_at=100.45)
    assert r.lost_seqs == [5, 6] and r.lost == 2 and r.lost_after_fault == 2 and r.split_brain is True
    assert r.window_s == 0.0
    before = analyze_rpo(heartbeats("aaaaaa"), readback({1: 1, 2: 1, 4: 1}), fault_at=100.45)
    assert before.split_brain is True and before.window_s == pytest.approx(100.45 - 100.31)
    clean = analyze_rpo(heartbeats("aaaaaa"), readback({1: 1, 2: 1, 4: 1, 5: 1, 6: 1}), fault_at=100.45)
    assert clean.split_brain is False and clean.lost == 1


def test_everything_lost_when_the_table_came_back_empty() -> None:
    r = analyze_rpo(heartbeats("aaaf"), readback({}), fault_at=101.0)
    assert r.lost == 3 and r.lost_seqs == [1, 2, 3] and r.unexpectedly_present == []
    assert r.window_s == pytest.approx(101.0 - 100.11)


def test_nothing_acknowledged_before_the_fault_cannot_be_measured() -> None:
    with pytest.raises(ValueError, match="acknowledged before the fault"):
        analyze_rpo(heartbeats("aaa"), readback({1: 1}), fault_at=100.0)
    with pytest.raises(ValueError, match="acknowledged before the fault"):
        analyze_rpo(heartbeats("ffii"), readback({}), fault_at=200.0)


def _run_dir(tmp_path: Path, hb: pd.DataFrame, back: pd.DataFrame | None, fault_at: float | None) -> str:
    (tmp_path / "samples").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(hb, schema=HEARTBEAT_SCHEMA, preserve_index=False), tmp_path / HEARTBEAT)
    if back is not None:
        table = pa.Table.from_pandas(back.astype({"count": "int32"}), schema=HEARTBEAT_READBACK_SCHEMA,
                                     preserve_index=False)  # fmt: skip
        pq.write_table(table, tmp_path / HEARTBEAT_READBACK)
    if fault_at is not None:
        (tmp_path / EVENTS).write_text(json.dumps({"t": fault_at, "kind": "fault.inject"}) + "\n")
    return str(tmp_path)


def test_probe_functions_over_a_run_directory(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, heartbeats("aaaaaiia"), readback({1: 1, 2: 1, 3: 1, 6: 2, 8: 1}), fault_at=100.6)
    assert lost_writes(run) == 2
    assert rpo_seconds(run) == pytest.approx(100.6 - 100.41)
    report = rpo_report(run)
    assert json.loads(json.dumps(report)) == report
    assert report["lost_seqs"] == [4, 5] and report["duplicates"] == [6] and report["indeterminate_present"] == 1
    assert lost_writes(run, fault_at=100.45) == 2
    assert ctk("drillbit.probes.rpo", "lost_writes", run_dir=run) == 2
    assert ctk("drillbit.probes.rpo", "rpo_report", run_dir=run) == report


def test_probe_functions_raise_without_a_read_back_or_a_fault_time(tmp_path: Path) -> None:
    no_back = _run_dir(tmp_path / "a", heartbeats("aaa"), None, fault_at=100.5)
    with pytest.raises(FileNotFoundError, match="read back"):
        lost_writes(no_back)
    no_fault = _run_dir(tmp_path / "b", heartbeats("aaa"), readback({1: 1, 2: 1, 3: 1}), fault_at=None)
    with pytest.raises(ValueError, match=r"fault\.inject"):
        rpo_seconds(no_fault)
    with pytest.raises(ActivityFailed, match=r"fault\.inject"):
        ctk("drillbit.probes.rpo", "rpo_seconds", run_dir=no_fault)
