"""The market-data probe against real replicas, with outages and losses of known size."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from drillbit.core.clock import Clock
from drillbit.core.rundir import MARKETDATA, MARKETDATA_SCHEMA
from drillbit.probes.marketdata import MarketDataSampler, analyze_marketdata
from drillbit.probes.samplers import read_samples

pytestmark = pytest.mark.slow


def trade(url: str, symbol: str) -> None:
    for side in ("sell", "buy"):
        body = {"symbol": symbol, "side": side, "price": "5", "qty": 1, "client_order_id": uuid.uuid4().hex}
        assert httpx.post(f"{url}/orders", json=body, timeout=5).status_code == 201


def rows(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in read_samples(run_dir / MARKETDATA, MARKETDATA_SCHEMA).to_pylist() if r["kind"] == kind]


def test_a_stalled_feed_shows_as_latency_of_the_stall_and_a_quiet_one_as_milliseconds(
    trading_dsn: str, replica_factory: Any, tmp_path: Path
) -> None:
    """Orders go through r1, the stream comes from r2; r2 is frozen (SIGSTOP) for 1.0 s: the trades
    acknowledged meanwhile are seen when it thaws, up to ~1 s late; before the stall, milliseconds."""
    r1, r2 = replica_factory(trading_dsn, "r1"), replica_factory(trading_dsn, "r2")
    clock = Clock()
    sampler = MarketDataSampler(r1.url, tmp_path, "stall", clock=clock, interval=0.1, unseen_after_s=2,
                                stream_url=f"{r2.url}/marketdata/stream").start()  # fmt: skip
    try:
        time.sleep(2.0)
        stalled_at = clock.now()
        os.kill(r2.proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(r2.proc.pid, signal.SIGCONT)
        thawed_at = clock.now()
        time.sleep(1.5)
    finally:
        os.kill(r2.proc.pid, signal.SIGCONT)
        sampler.stop()
    trades = rows(tmp_path, "trade")
    before = [r["latency_s"] for r in trades if r["t"] < stalled_at - 0.2]
    during = [r for r in trades if stalled_at + 0.05 < r["t"] < thawed_at - 0.3]
    assert len(before) >= 10 and sorted(before)[len(before) // 2] < 0.05, before
    assert during, trades
    for r in during:  # seen at the thaw at the earliest: its latency is at least the rest of the stall
        assert thawed_at - r["t"] - 0.1 <= r["latency_s"] <= thawed_at - r["t"] + 0.5, (r, thawed_at)
    m = analyze_marketdata(tmp_path, phases={"run": (0.0, clock.now() + 10)})
    assert m.phases["all"].max_ms is not None and 700 < m.phases["all"].max_ms < 1600
    assert m.phases["all"].lost == 0 and m.phases["all"].unseen == 0


def test_a_reader_cut_off_fills_its_gap_from_the_history_and_counts_a_deleted_trade_lost(
    trading_dsn: str, replica_factory: Any, tmp_path: Path
) -> None:
    """The stream's replica dies and comes back on the same port 2 s later: the trades meanwhile are
    skipped on the stream and filled from the history (the probe's own timed from their acknowledgement
    to the fill); one of them deleted from the database is the one trade counted lost."""
    r1 = replica_factory(trading_dsn, "r1")
    r2 = replica_factory(trading_dsn, "r2")
    port = urlsplit(r2.url).port
    clock = Clock()
    sampler = MarketDataSampler(r1.url, tmp_path, "cut", clock=clock, interval=0.2, unseen_after_s=2,
                                stream_url=f"{r2.url}/marketdata/stream").start()  # fmt: skip
    try:
        trade(r1.url, "ZZZ")  # ZZZ 1, seen
        time.sleep(1.0)
        r2.proc.kill()
        r2.proc.wait(5)
        cut_at = clock.now()
        for _ in range(3):  # ZZZ 2, 3, 4: never on the stream
            trade(r1.url, "ZZZ")
        with psycopg.connect(trading_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM trades WHERE symbol = 'ZZZ' AND seq = 3")
        time.sleep(1.0)
        replica_factory(trading_dsn, "r3", port=port)
        back_at = clock.now()
        time.sleep(1.0)
        trade(r1.url, "ZZZ")  # ZZZ 5: reveals the gap 2-4
        time.sleep(1.0)
    finally:
        sampler.stop()
    gaps = {r["symbol"]: r for r in rows(tmp_path, "gap")}
    assert (gaps["ZZZ"]["count"], gaps["ZZZ"]["recovered"]) == (3, 2)
    assert rows(tmp_path, "reconnect"), "the reader never noticed its stream was cut"
    recovered = [r for r in rows(tmp_path, "trade") if r["via"] == "recovery"]
    assert recovered, "no probe trade of the outage was filled from the history"
    for r in recovered:
        assert cut_at - 0.3 < r["t"] < back_at + 0.5 and r["latency_s"] >= back_at - r["t"] - 0.1, (r, cut_at, back_at)
    m = analyze_marketdata(tmp_path, phases={"run": (0.0, clock.now() + 10)})
    assert m.phases["all"].lost == 1 and m.phases["all"].unseen == 0, m.phases["all"]
    assert m.phases["all"].duplicates == 0
