"""Admission in the trading API: orders queue for their symbol holding no connection, reads have
their own pool, and a request refused for overload is a 503 with Retry-After that did nothing.

The ground truth: a test connection holds the symbol's advisory lock (what a slow order on another
replica does), so every order of that symbol is stuck for exactly as long as the test decides.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest

from drillbit.sut.feed import APPLICATION_NAME

pytestmark = pytest.mark.slow

HOT = "HOT"


def _order(symbol: str = HOT) -> dict[str, Any]:
    return {"symbol": symbol, "side": "buy", "price": "1.00", "qty": 1, "client_order_id": uuid.uuid4().hex}


def _metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not on /metrics"
    return float(match.group(1))


@contextmanager
def _symbol_locked(dsn: str, symbol: str) -> Iterator[None]:
    """Another replica's transaction on ``symbol``, holding its advisory lock until the block ends."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (symbol,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (symbol,))


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_orders_waiting_for_their_symbol_hold_no_pooled_connection(trading_dsn: str, replica_factory: Any) -> None:
    """20 orders on a locked symbol: one write connection waits on the database, 19 wait in the
    replica's queue with none; reads are served meanwhile; every order is placed once unlocked."""
    api = replica_factory(trading_dsn, DRILL_SUT_REQUEST_TIMEOUT="10").url
    with cf.ThreadPoolExecutor(20) as ex:
        with _symbol_locked(trading_dsn, HOT):
            futures = [ex.submit(httpx.post, f"{api}/orders", json=_order(), timeout=15) for _ in range(20)]
            _wait_for(lambda: _metric(api, "sut_matching_waiting") == 19)
            assert _metric(api, "sut_db_connections_in_use", '{pool="write"}') == 1
            t0 = time.monotonic()
            book = httpx.get(f"{api}/book/{HOT}", timeout=5)
            ready = httpx.get(f"{api}/readyz", timeout=5)
            read_s = time.monotonic() - t0
            assert (book.status_code, ready.status_code) == (200, 200)
            assert read_s < 2.0, f"reads waited {read_s:.2f} s behind the queued writes"
            assert not any(f.done() for f in futures)
        statuses = [f.result().status_code for f in futures]
    assert statuses == [201] * 20
    with psycopg.connect(trading_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE symbol = %s", (HOT,)).fetchone() == (20,)
    assert _metric(api, "sut_db_connections_in_use_peak", '{pool="write"}') == 1


def test_other_symbols_trade_while_one_symbol_is_stuck(trading_dsn: str, replica_factory: Any) -> None:
    """A queue on one symbol blocks only that symbol: every other symbol is placed at once."""
    api = replica_factory(trading_dsn, DRILL_SUT_REQUEST_TIMEOUT="10").url
    with cf.ThreadPoolExecutor(8) as ex, _symbol_locked(trading_dsn, HOT):
        stuck = [ex.submit(httpx.post, f"{api}/orders", json=_order(), timeout=15) for _ in range(8)]
        _wait_for(lambda: _metric(api, "sut_matching_waiting") == 7)
        for other in ("AAPL", "MSFT", "NVDA", "ES.F", "BTC-USD"):
            r = httpx.post(f"{api}/orders", json=_order(other), timeout=5)
            assert r.status_code == 201, r.text
        assert not any(f.done() for f in stuck)
    assert all(f.result().status_code == 201 for f in stuck)


def test_an_order_refused_for_overload_is_shed_with_retry_after_and_did_nothing(
    trading_dsn: str, replica_factory: Any
) -> None:
    """The symbol is held longer than any deadline (2 s). A enters the database and times out
    there; B..F arrive together 0.6 s later: B gets its turn with 0.6 s left and times out in the
    database; C..F get theirs with less than a tenth of their deadline left and are shed: 503,
    Retry-After, a body that says so, counted in sut_shed_total (the database timeouts are plain
    503s: a failure, not a refusal). None of them was written."""
    api = replica_factory(trading_dsn, DRILL_SUT_REQUEST_TIMEOUT="2").url
    barrier = threading.Barrier(5)

    def post(together: bool) -> httpx.Response:
        with httpx.Client(timeout=10) as client:
            client.get(f"{api}/healthz")  # the connection is open before the barrier
            if together:
                barrier.wait()
            return client.post(f"{api}/orders", json=_order())

    with cf.ThreadPoolExecutor(6) as ex, _symbol_locked(trading_dsn, HOT):
        first = ex.submit(post, False)
        _wait_for(lambda: _metric(api, "sut_db_connections_in_use", '{pool="write"}') == 1)
        time.sleep(0.6)
        rest = [ex.submit(post, True) for _ in range(5)]
        answers = [first.result(), *(f.result() for f in rest)]  # all answered while the lock is held
    assert [a.status_code for a in answers] == [503] * 6
    bodies = [a.json() for a in answers]
    shed_header = [a.headers.get("retry-after") == "1" for a in answers]
    assert shed_header == [b.get("shed") is True for b in bodies], (shed_header, bodies)
    assert sorted(b["error"] for b in bodies) == ["database unavailable"] * 2 + ["overloaded"] * 4, bodies
    assert bodies[0]["error"] == "database unavailable"
    assert all(b.get("shed") is True for b in bodies if b["error"] == "overloaded")
    assert _metric(api, "sut_shed_total", '{reason="symbol queue"}') == 4
    with psycopg.connect(trading_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE symbol = %s", (HOT,)).fetchone() == (0,)
    assert httpx.post(f"{api}/orders", json=_order(), timeout=5).status_code == 201  # and it recovers


def test_a_cancel_waits_for_its_symbol_like_an_order(trading_dsn: str, replica_factory: Any) -> None:
    api = replica_factory(trading_dsn, DRILL_SUT_REQUEST_TIMEOUT="10").url
    placed = httpx.post(f"{api}/orders", json=_order(), timeout=5).json()
    with cf.ThreadPoolExecutor(1) as ex:
        with _symbol_locked(trading_dsn, HOT):
            cancel = ex.submit(httpx.delete, f"{api}/orders/{placed['id']}", timeout=15)
            _wait_for(lambda: _metric(api, "sut_db_connections_in_use", '{pool="write"}') == 1)
            assert httpx.get(f"{api}/orders/{placed['id']}", timeout=5).json()["status"] == "open"
            assert not cancel.done()
        assert cancel.result().json()["status"] == "cancelled"


def test_pools_open_every_connection_before_the_replica_reports_ready(trading_dsn: str, replica_factory: Any) -> None:
    api = replica_factory(trading_dsn, DRILL_SUT_WRITE_POOL_SIZE="3", DRILL_SUT_READ_POOL_SIZE="2").url
    assert _metric(api, "sut_db_pool_size", '{pool="write"}') == 3
    assert _metric(api, "sut_db_pool_size", '{pool="read"}') == 2
    with psycopg.connect(trading_dsn) as conn:
        dbname = conn.info.dbname
        _wait_for(
            lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = ''", (dbname,)
            ).fetchone()
            == (5 + 1,)  # the replica's 3 + 2, and this connection (its market-data feed names itself)
        )


def test_connections_the_server_cut_are_replaced_without_failing_the_requests_that_draw_them(
    trading_dsn: str, replica_factory: Any
) -> None:
    """Every pooled connection of the replica is terminated by the server (what a failover or a
    database restart does to idle connections; the pool notices only when one is used). Each
    request after that is answered: a broken connection is discarded and the next one tried at
    once (psycopg_pool's own check waited a 1 s back-off first, longer than a read may wait)."""
    api = replica_factory(trading_dsn, DRILL_SUT_WRITE_POOL_SIZE="2", DRILL_SUT_READ_POOL_SIZE="2").url
    with psycopg.connect(trading_dsn, autocommit=True) as conn:
        dbname = conn.info.dbname
        others = ("FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                  f"AND application_name <> '{APPLICATION_NAME}'")  # the pools' (the feed reconnects on its own)
        assert conn.execute(f"SELECT count(*) {others}", (dbname,)).fetchone() == (4,)
        conn.execute(f"SELECT pg_terminate_backend(pid) {others}", (dbname,))
        _wait_for(lambda: conn.execute(f"SELECT count(*) {others}", (dbname,)).fetchone() == (0,))
    answers = [httpx.get(f"{api}/readyz", timeout=5).status_code for _ in range(3)]
    answers += [httpx.post(f"{api}/orders", json=_order(), timeout=5).status_code for _ in range(3)]
    assert answers == [200] * 3 + [201] * 3
    discarded = [_metric(api, "sut_db_connections_discarded_total", f'{{pool="{p}"}}') for p in ("read", "write")]
    assert discarded[0] >= 1 and discarded[1] >= 1, discarded
