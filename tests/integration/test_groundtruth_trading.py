"""The samplers through the real trading API (a `python -m drillbit.sut.serve` replica on a real PostgreSQL).

Heartbeats as orders (client order id ``hb-<run>-<seq>``), read back from the orders table: delete
k known acknowledged orders and exactly those k are lost. Availability as a place+cancel round
trip: every probe ok on a healthy API, every probe failing while the database is down.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drillbit.core.clock import Clock
from drillbit.probes.availability import AvailabilitySampler, PlaceCancelOrder, analyze_rto, load_availability
from drillbit.probes.rpo import HeartbeatWriter, analyze_rpo, load_heartbeats

pytestmark = pytest.mark.slow


def test_heartbeats_through_the_api_and_a_place_cancel_availability_probe(
    trading_dsn: str, replica_factory: Any, tmp_path: Path
) -> None:
    api = replica_factory(trading_dsn)
    clock = Clock()
    heartbeat = HeartbeatWriter(trading_dsn, tmp_path, "api-run", clock=clock, interval=0.05, api_url=api.url)
    availability = AvailabilitySampler(PlaceCancelOrder(api.url, "api-run"), tmp_path, clock=clock, interval=0.1)
    with heartbeat, availability:
        time.sleep(1.5)
    heartbeat.readback()
    hb, back = load_heartbeats(tmp_path)
    assert len(hb) >= 20 and (hb["outcome"].astype(str) == "acked").all()
    assert sorted(back["seq"]) == sorted(hb["seq"]) and (back["count"] == 1).all()

    doomed = [2, 5, 6, 11]
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE client_order_id = ANY(%s)", ([f"hb-api-run-{s}" for s in doomed],))
        statuses = conn.execute(
            "SELECT status, count(*) FROM orders WHERE client_order_id LIKE 'av-api-run-%' GROUP BY 1"
        ).fetchall()
    fault_at = clock.now()
    heartbeat.readback()
    result = analyze_rpo(*load_heartbeats(tmp_path), fault_at=fault_at)
    assert result.lost_seqs == doomed and result.indeterminate == 0 and result.duplicates == []

    s = load_availability(tmp_path)
    assert len(s) >= 12 and s["ok"].all(), s[~s["ok"]]
    assert dict(statuses) == {"cancelled": len(s)}  # each probe placed one order and cancelled it
    assert analyze_rto(s, fault_at=float(s["t"].iloc[3]), stability_window=0.5).rto_s == 0.0


def test_place_cancel_availability_fails_while_the_database_is_down(
    pg_server: Any, trading_dsn: str, replica_factory: Any, tmp_path: Path
) -> None:
    api = replica_factory(trading_dsn, DRILL_SUT_REQUEST_TIMEOUT="0.5")
    with AvailabilitySampler(PlaceCancelOrder(api.url, "db-down"), tmp_path, clock=Clock(), interval=0.1):
        time.sleep(0.5)
        pg_server.stop()
        try:
            time.sleep(1.0)
        finally:
            pg_server.start()
        time.sleep(2.0)
    s = load_availability(tmp_path).sort_values("t")
    ok = s["ok"].to_numpy()
    assert ok[:3].all() and not ok.all() and ok[-5:].all(), s
    failed = s[~s["ok"]]
    assert set(failed["error"].astype(str)) <= {"http", "timeout"} and (failed["status"].isin([0, 503])).all()
