"""The reference trading API's market data: every committed trade on every replica's stream, numbered per symbol."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from httpx_sse import connect_sse

from drillbit.sut.feed import APPLICATION_NAME

pytestmark = pytest.mark.slow


def order(side: str, price: str, qty: int, symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "price": price, "qty": qty, "client_order_id": uuid.uuid4().hex}


def cross(url: str, symbol: str, qty: int = 1) -> list[int]:
    """A sell and the buy that takes it: the buy's trade ids."""
    assert httpx.post(f"{url}/orders", json=order("sell", "10", qty, symbol), timeout=5).status_code == 201
    buy = httpx.post(f"{url}/orders", json=order("buy", "10", qty, symbol), timeout=5)
    assert buy.status_code == 201, buy.text
    return [f["trade_id"] for f in buy.json()["fills"]]


@dataclass
class Reader:
    """A stream reader on a thread: every event, in order."""

    url: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5, read=3)) as client, connect_sse(client, "GET", self.url) as src:
            for ev in src.iter_sse():
                self.events.append((ev.event, json.loads(ev.data)))
                if self.stop.is_set():
                    return

    def trades(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == "trade"]

    def wait_for(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.trades()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.trades()


@pytest.fixture
def reader_of() -> Iterator[Any]:
    threads: list[tuple[Reader, threading.Thread]] = []

    def start(url: str) -> Reader:
        reader = Reader(url)
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        threads.append((reader, thread))
        deadline = time.monotonic() + 5
        while not reader.events and time.monotonic() < deadline:  # the hello: subscribed
            time.sleep(0.02)
        assert reader.events and reader.events[0][0] == "hello", reader.events
        return reader

    yield start
    for reader, thread in threads:
        reader.stop.set()
        thread.join(5)


def test_a_trade_matched_by_one_replica_reaches_the_stream_of_another_numbered_per_symbol(
    trading_dsn: str, replica_factory: Any, reader_of: Any
) -> None:
    """Two replicas share one database: the stream of the one that did not match sees every trade, each
    symbol numbered 1, 2, 3... on its own."""
    r1, r2 = replica_factory(trading_dsn, "r1"), replica_factory(trading_dsn, "r2")
    reader = reader_of(f"{r2.url}/marketdata/stream")
    ids = cross(r1.url, "AAA") + cross(r1.url, "BBB") + cross(r1.url, "AAA", qty=3)
    trades = reader.wait_for(3)
    assert [t["trade_id"] for t in trades] == ids
    assert [(t["symbol"], t["seq"]) for t in trades] == [("AAA", 1), ("BBB", 1), ("AAA", 2)]
    assert trades[2]["qty"] == 3 and trades[2]["price"] == "10"


def test_a_stream_names_its_symbols_and_the_gap_fill_returns_what_follows_a_number(
    trading_dsn: str, replica_factory: Any, reader_of: Any
) -> None:
    """?symbols= keeps the stream to those; /marketdata/{symbol}/trades?after_seq=N lists the trades after N."""
    r1 = replica_factory(trading_dsn)
    reader = reader_of(f"{r1.url}/marketdata/stream?symbols=CCC")
    for _ in range(3):
        cross(r1.url, "CCC")
        cross(r1.url, "DDD")
    assert {t["symbol"] for t in reader.wait_for(3)} == {"CCC"}
    time.sleep(0.3)
    assert len(reader.trades()) == 3
    fill = httpx.get(f"{r1.url}/marketdata/CCC/trades", params={"after_seq": 1, "limit": 10}).json()
    assert [t["seq"] for t in fill["trades"]] == [2, 3]
    bad = httpx.get(f"{r1.url}/marketdata/CCC/trades", params={"after_seq": "-1"})
    assert bad.status_code == 422 and bad.json()["field"] == "after_seq"


def test_the_feed_replays_what_committed_while_its_listening_connection_was_cut(
    trading_dsn: str, replica_factory: Any, reader_of: Any
) -> None:
    """The replica's LISTEN connection is terminated by the database, trades commit meanwhile: the stream
    says the feed went down and came back, then carries every trade once, in order, none skipped."""
    r1 = replica_factory(trading_dsn)
    reader = reader_of(f"{r1.url}/marketdata/stream")
    before = cross(r1.url, "EEE")
    reader.wait_for(1)
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        listening = f"WHERE application_name = '{APPLICATION_NAME}'"
        cut = conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {listening}").fetchall()
        assert cut, "no listening connection found"
        during = [i for _ in range(5) for i in cross(r1.url, "EEE")]  # committed while the feed reconnects
    trades = reader.wait_for(6)
    assert [t["trade_id"] for t in trades] == before + during
    assert [t["seq"] for t in trades] == [1, 2, 3, 4, 5, 6]
    states = [data["feed"] for kind, data in reader.events if kind == "feed"]
    assert states[:2] == ["down", "live"], reader.events


def test_a_draining_replica_ends_its_streams(trading_dsn: str, replica_factory: Any, reader_of: Any) -> None:
    """SIGTERM: the replica's open streams end (their readers reconnect elsewhere) instead of holding the
    replica up until its drain timeout."""
    r1 = replica_factory(trading_dsn)
    reader = reader_of(f"{r1.url}/marketdata/stream")
    started = time.monotonic()
    r1.proc.terminate()
    r1.proc.wait(10)
    assert time.monotonic() - started < 5
    assert reader.events[0][0] == "hello"
