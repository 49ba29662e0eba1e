"""RPO measured by the real heartbeat writer + analyzer against a real PostgreSQL, with known outcomes.

Truth: we delete k known acknowledged heartbeat rows (writes "lost"); we make writes time out
(a lock that makes statement_timeout fire; a backend frozen with SIGSTOP, so only the client's
deadline can end the write); we crash and restart the server mid-run. Timeouts and lost
connections must be indeterminate (and found present or absent), never lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.rundir import EVENTS
from drillbit.probes.rpo import HeartbeatWriter, analyze_rpo, heartbeat_meta, load_heartbeats, lost_writes, rpo_report
from drillbit.targets.sandbox.procs import free_ports

pytestmark = pytest.mark.slow


def outcomes(run_dir: Path) -> Any:
    hb, _ = load_heartbeats(run_dir)
    return hb.sort_values("seq").set_index("seq")


def test_deleting_k_acknowledged_rows_reports_exactly_k_lost_with_the_window(trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-k", clock=clock, interval=0.05, timeout=1.0)
    with writer:
        time.sleep(1.5)
    writer.readback()
    hb = outcomes(tmp_path)
    assert (hb["outcome"].astype(str) == "acked").all() and len(hb) >= 20
    assert list(hb.index) == list(range(1, len(hb) + 1))  # a gap-free monotonic sequence
    clean = rpo_report(str(tmp_path), fault_at=clock.now())
    assert clean["lost"] == 0 and clean["window_s"] == 0.0 and clean["duplicates"] == []

    doomed = [3, 4, 9, 15, 16]
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM drill_heartbeat WHERE run_id = %s AND seq = ANY(%s)", ("run-k", doomed))
    fault_at = clock.now()
    with EventLog(tmp_path / EVENTS, clock) as events:
        events.emit("fault.inject", t=fault_at, action="delete 5 acknowledged heartbeat rows")
    writer.readback()
    result = rpo_report(str(tmp_path))  # the fault time from events.jsonl
    assert result["lost"] == len(doomed) and result["lost_seqs"] == doomed
    assert result["window_s"] == pytest.approx(fault_at - hb.loc[3, "acked"], abs=1e-9)
    assert result["lost_span_s"] == pytest.approx(hb.loc[16, "acked"] - hb.loc[3, "acked"], abs=1e-9)
    assert result["indeterminate"] == 0 and result["unexpectedly_present"] == [] and result["lost_after_fault"] == 0
    assert lost_writes(str(tmp_path)) == 5
    print(f"\nRPO: deleted {doomed} -> lost {result['lost_seqs']}, window {result['window_s']:.3f} s")


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


def test_statement_timeouts_on_a_lock_are_indeterminate_never_lost(trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-lock", clock=clock, interval=0.05, timeout=0.3)
    locked = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(trading_dsn) as conn:  # a transaction: the lock is held until it ends
            conn.execute("LOCK TABLE drill_heartbeat IN ACCESS EXCLUSIVE MODE")
            locked.set()
            time.sleep(1.0)
            conn.rollback()

    with writer:
        time.sleep(0.4)
        holder = threading.Thread(target=hold_lock)
        holder.start()
        assert locked.wait(5)
        fault_at = clock.now()
        holder.join()
        time.sleep(0.6)
    writer.readback()
    hb = outcomes(tmp_path)
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=fault_at)
    blocked = hb[hb["outcome"].astype(str) == "indeterminate"]
    assert 2 <= len(blocked) <= 4, hb["outcome"].value_counts()  # 1 s of lock / 0.3 s statement_timeout
    assert set(blocked["error"].astype(str)) == {"statement_timeout"}
    assert result.indeterminate == len(blocked) and result.lost == 0 and result.failed == 0
    # the server cancelled them (rolled back): absent, and reported as such, not as lost
    assert result.indeterminate_absent_seqs == sorted(blocked.index)
    # ticks were skipped while a write was blocked, not queued into a burst afterwards
    assert heartbeat_meta(tmp_path)["skipped_ticks"] >= 10
    assert hb["sent"].diff().min() >= 0.04
    assert (hb["outcome"].astype(str).iloc[-5:] == "acked").all(), "the writer recovers after the lock is released"


def _backend_pid(dsn: str, run_id: str) -> int:
    """The server process serving the heartbeat writer's connection."""
    deadline = time.monotonic() + 5
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE 'INSERT INTO \"drill_heartbeat\"%'"
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError(f"no heartbeat backend for {run_id}")


def test_a_frozen_backend_is_cut_off_by_the_client_deadline_and_the_write_is_indeterminate(
    trading_dsn: str, tmp_path: Path
) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-stop", clock=clock, interval=0.05, timeout=0.3)
    with writer:
        time.sleep(0.4)
        pid = _backend_pid(trading_dsn, "run-stop")
        os.kill(pid, signal.SIGSTOP)  # a hung primary: no answer, and statement_timeout cannot fire
        fault_at = clock.now()
        try:
            time.sleep(1.2)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.6)
    writer.readback()
    hb = outcomes(tmp_path)
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=fault_at)
    cut = hb[hb["error"].astype(str) == "timeout"]
    assert len(cut) == 1, hb["outcome"].value_counts()  # one write hung, cut off after 0.3 + 0.5 s
    assert (cut["outcome"].astype(str) == "indeterminate").all()
    assert result.lost == 0 and result.indeterminate == (hb["outcome"].astype(str) == "indeterminate").sum()
    # the frozen backend had the INSERT in its socket buffer: once thawed, it committed it. The client
    # never learned that: indeterminate, present, and not an error of the analyzer
    assert result.indeterminate_present_seqs == list(cut.index)
    assert (hb["outcome"].astype(str).iloc[-5:] == "acked").all(), "the writer reconnects"


def test_a_database_crash_and_restart(pg_server: Any, trading_dsn: str, tmp_path: Path) -> None:
    clock = Clock()
    writer = HeartbeatWriter(trading_dsn, tmp_path, "run-crash", clock=clock, interval=0.05, timeout=0.5)
    with writer:
        time.sleep(0.5)
        fault_at = clock.now()
        pg_server.stop()  # immediate: a crash, every connection cut
        try:
            time.sleep(0.8)
        finally:
            pg_server.start()
        time.sleep(1.0)
    writer.readback()
    hb = outcomes(tmp_path)
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=fault_at)
    kinds = hb["outcome"].astype(str)
    refused = hb[hb["error"].astype(str) == "connect"]
    assert len(refused) >= 3 and (refused["outcome"].astype(str) == "failed").all()  # never sent while down
    assert result.lost == 0, result  # a crash-restart keeps every acknowledged commit
    assert result.unexpectedly_present == []  # a write that was never sent is never found
    assert result.indeterminate == (kinds == "indeterminate").sum()
    assert result.indeterminate_present + result.indeterminate_absent == result.indeterminate
    assert (kinds.iloc[-5:] == "acked").all(), "the writer reconnects after the restart"
    print(f"\nRPO crash/restart: {kinds.value_counts().to_dict()}, lost {result.lost}, "
          f"indeterminate present/absent {result.indeterminate_present}/{result.indeterminate_absent}")  # fmt: skip


def test_the_writer_reaches_the_primary_through_a_multi_host_dsn(trading_dsn: str, tmp_path: Path) -> None:
    params = conninfo_to_dict(trading_dsn)
    dead = free_ports([0])[0]  # nothing listens there: libpq moves on to the next host
    dsn = make_conninfo("", **{**params, "host": "127.0.0.1,127.0.0.1", "port": f"{dead},{params['port']}",
                               "target_session_attrs": "read-write"})  # fmt: skip
    writer = HeartbeatWriter(dsn, tmp_path, "run-multi", clock=Clock(), interval=0.05)
    with writer:
        time.sleep(0.5)
    writer.readback()
    hb, back = load_heartbeats(tmp_path)
    assert len(hb) >= 5 and (hb["outcome"].astype(str) == "acked").all() and len(back) == len(hb)
