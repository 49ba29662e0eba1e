"""RPO measured by the heartbeat writer + analyzer against a real PostgreSQL, with known losses.

Truth: we delete k known acknowledged heartbeat rows (writes "lost"), and we make writes time out
by holding a lock (outcomes the client never learns).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from drillbit.clock import Clock
from probes.rpo import HeartbeatWriter, analyze_rpo, load_heartbeats

pytestmark = pytest.mark.slow


def test_deleting_k_acknowledged_rows_reports_exactly_k_lost_with_the_window(trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-k", clock=clock, interval=0.05, timeout=1.0)
    with writer:
        time.sleep(1.5)
    writer.readback()
    hb, back = load_heartbeats(tmp_path)
    assert (hb["outcome"].astype(str) == "acked").all() and len(hb) >= 20
    clean = analyze_rpo(hb, back, fault_at=clock.now())
    assert clean.lost == 0 and clean.window_s == 0.0 and clean.duplicates == []

    doomed = [3, 4, 9, 15, 16]
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM drill_heartbeat WHERE run_id = %s AND seq = ANY(%s)", ("run-k", doomed))
    fault_at = clock.now()
    writer.readback()
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=fault_at)
    assert result.lost == len(doomed) and result.lost_seqs == doomed
    acked = hb.set_index("seq")["acked"]
    assert result.window_s == pytest.approx(fault_at - acked[3], abs=1e-9)
    assert result.lost_span_s == pytest.approx(acked[16] - acked[3], abs=1e-9)
    assert result.indeterminate == 0 and result.unexpectedly_present == []


def test_a_duplicated_write_is_reported(trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-dup", clock=clock, interval=0.05)
    with writer:
        time.sleep(0.5)
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO drill_heartbeat (run_id, seq, sent_at) VALUES ('run-dup', 2, now())")
    writer.readback()
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=clock.now())
    assert result.duplicates == [2] and result.lost == 0


def test_writes_that_time_out_are_indeterminate_never_lost(trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-t", clock=clock, interval=0.05, timeout=0.3)
    locked = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(trading_dsn) as conn:  # a transaction: the lock is held until commit
            conn.execute("LOCK TABLE drill_heartbeat IN ACCESS EXCLUSIVE MODE")
            locked.set()
            time.sleep(1.0)

    with writer:
        time.sleep(0.4)
        holder = threading.Thread(target=hold_lock)
        holder.start()
        locked.wait(5)
        fault_at = clock.now()
        holder.join()
        time.sleep(0.6)
    writer.readback()
    hb, back = load_heartbeats(tmp_path)
    result = analyze_rpo(hb, back, fault_at=fault_at)
    outcomes = hb["outcome"].astype(str)
    assert result.indeterminate >= 2, outcomes.value_counts()
    assert result.indeterminate == (outcomes == "indeterminate").sum()
    assert result.lost == 0  # nothing acknowledged went missing
    # the write blocked on the lock when the client gave up went through once the lock was released
    assert result.indeterminate_present >= 1
    assert result.indeterminate_present + result.indeterminate_absent == result.indeterminate
    assert (outcomes.iloc[-5:] == "acked").all(), "the writer recovers after the lock is released"
