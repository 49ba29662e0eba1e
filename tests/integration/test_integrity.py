"""Trading integrity against ground truth: a real PostgreSQL the matching engine wrote, then corrupted on purpose.

A clean book (orders placed through ``drillbit.sut.matching``: resting, crossing, partial fills)
passes every shipped check (probes/integrity.yaml); each invariant broken by hand is caught by its
check, with the violating ids. The checker writes nothing, is bounded in time, and says why when it
cannot run.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drillbit.core.clock import Clock
from drillbit.core.project import find_project
from drillbit.probes.integrity import (
    IntegrityCheck,
    IntegrityDefinitions,
    analyze_integrity,
    check_integrity,
    load_integrity_definitions,
    run_checks,
)
from drillbit.sut.matching import OrderRequest, place

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: (symbol, side, price, qty): rests, crosses, fills partially, on two symbols
FLOW = [("ACME", "sell", "101", 5), ("ACME", "sell", "102", 5), ("ACME", "buy", "100", 3),
        ("ACME", "buy", "101.5", 7), ("ACME", "sell", "100", 4), ("BOLT", "buy", "10", 2),
        ("BOLT", "sell", "9", 3), ("BOLT", "buy", "8", 1)]  # fmt: skip


async def _place_all(dsn: str) -> list[str]:
    ids = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for i, (symbol, side, price, qty) in enumerate(FLOW):
            coid = f"hb-run-{i}"
            await place(conn, OrderRequest(symbol, side, Decimal(price), qty, coid))  # type: ignore[arg-type]
            ids.append(coid)
    return ids


@pytest.fixture
def book(trading_dsn: str) -> tuple[str, list[str]]:
    """A database the matching engine wrote, and the client order ids it acknowledged."""
    return trading_dsn, asyncio.run(_place_all(trading_dsn))


def _shipped() -> IntegrityDefinitions:
    return load_integrity_definitions(find_project(ROOT))[0]


def _check(dsn: str, acked: list[str], definitions: IntegrityDefinitions | None = None) -> dict[str, dict[str, Any]]:
    record = run_checks(dsn, definitions or _shipped(), acked=acked, source="test", clock=Clock(), retry_for=0)
    assert record["ran"], record["reason"]
    return {c["name"]: c for c in record["checks"]}


def _sql(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s.encode())


def _violated(checks: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    assert all(c["error"] is None for c in checks.values()), checks
    return {n: [v["id"] for v in c["ids"]] for n, c in checks.items() if c["violations"]}


def test_a_book_the_matching_engine_wrote_passes_every_check(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    with psycopg.connect(dsn) as conn:  # the flow did trade, partially fill and rest
        row = conn.execute("SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM orders "
                           "WHERE status IN ('open', 'partially_filled'))").fetchone()  # fmt: skip
    assert row is not None
    trades, resting = row
    assert trades >= 4 and resting >= 3
    checks = _check(dsn, acked)
    assert len(checks) == 8 and _violated(checks) == {}


def test_a_deleted_acknowledged_order_is_caught_by_its_client_order_id(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    _sql(dsn, "DELETE FROM orders WHERE client_order_id = 'hb-run-1'")  # it rests: no trade refers to it
    assert _violated(_check(dsn, acked)) == {"acked_orders_exactly_once": ["hb-run-1"]}


def test_an_acknowledged_order_present_twice_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    _sql(dsn, "ALTER TABLE orders DROP CONSTRAINT orders_client_order_id_key",
         "INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
         "VALUES ('hb-run-5', 'ZED', 'buy', 1, 1, 1, 'open')")  # fmt: skip
    found = _violated(_check(dsn, acked))
    assert found["acked_orders_exactly_once"] == ["hb-run-5"]
    assert found["client_order_ids_unique"] == ["hb-run-5"]


def test_a_client_order_id_used_twice_is_caught_beyond_the_heartbeat(book: tuple[str, list[str]]) -> None:
    dsn, _ = book
    _sql(dsn, "ALTER TABLE orders DROP CONSTRAINT orders_client_order_id_key",
         "INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) VALUES "
         "('trader-7', 'ZED', 'buy', 1, 1, 1, 'open'), ('trader-7', 'ZED', 'buy', 1, 1, 1, 'open')")  # fmt: skip
    assert _violated(_check(dsn, [])) == {"client_order_ids_unique": ["trader-7"]}


def test_an_order_filled_beyond_its_quantity_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    # one more trade against the filled sell at 101 (id of hb-run-0): 5 + 1 > 5
    _sql(dsn, "INSERT INTO trades (symbol, price, qty, buy_order_id, sell_order_id) SELECT 'ACME', 101, 1, "
              "(SELECT id FROM orders WHERE client_order_id = 'hb-run-3'), id FROM orders "
              "WHERE client_order_id = 'hb-run-0'")  # fmt: skip
    with psycopg.connect(dsn) as conn:
        sell_id = str((conn.execute("SELECT id FROM orders WHERE client_order_id = 'hb-run-0'").fetchone() or [0])[0])
    checks = _check(dsn, acked)
    assert sell_id in [v["id"] for v in checks["orders_not_overfilled"]["ids"]]
    assert any("filled=6" in (v["detail"] or "") for v in checks["orders_not_overfilled"]["ids"])


def test_a_trade_priced_beyond_the_buyers_limit_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    with psycopg.connect(dsn, autocommit=True) as conn:
        trade_id = (conn.execute("UPDATE trades SET price = 999 WHERE id = (SELECT min(id) FROM trades) "
                                 "RETURNING id").fetchone() or [0])[0]  # fmt: skip
    checks = _check(dsn, acked)
    assert _violated(checks) == {"trades_match_both_sides": [str(trade_id)]}
    assert "outside buy limit" in (checks["trades_match_both_sides"]["ids"][0]["detail"] or "")


def test_a_trade_between_two_buy_orders_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    with psycopg.connect(dsn, autocommit=True) as conn:
        trade_id = (conn.execute("UPDATE trades SET sell_order_id = (SELECT id FROM orders WHERE client_order_id = "
                                 "'hb-run-2') WHERE id = (SELECT min(id) FROM trades) RETURNING id").fetchone()
                    or [0])[0]  # fmt: skip
    assert str(trade_id) in _violated(_check(dsn, acked))["trades_match_both_sides"]


def test_a_crossed_resting_book_is_caught_with_both_orders(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    # a resting bid at 103 over the resting ask at 102, as if matching had been skipped
    _sql(dsn, "INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
              "VALUES ('x-cross', 'ACME', 'buy', 103, 1, 1, 'open')")  # fmt: skip
    checks = _check(dsn, acked)
    assert _violated(checks) == {"book_not_crossed": ["ACME"]}
    assert "bid=103" in (checks["book_not_crossed"]["ids"][0]["detail"] or "")


def test_a_position_bought_but_never_sold_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    # a fill recorded on one side only: the buyer got 1 more than anyone sold
    _sql(dsn, "UPDATE orders SET remaining = remaining - 1, status = 'partially_filled' "
              "WHERE client_order_id = 'hb-run-7'")  # fmt: skip
    found = _violated(_check(dsn, acked))
    assert found["net_position_zero"] == ["BOLT"]


def test_an_id_sequence_behind_its_table_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    _sql(dsn, "SELECT setval('trades_id_seq', 1)")  # the next trade would reuse id 2
    assert _violated(_check(dsn, acked)) == {"id_sequences_ahead": ["trades"]}


def test_a_trade_gone_from_a_symbols_sequence_is_caught(book: tuple[str, list[str]]) -> None:
    dsn, acked = book
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT symbol, max(seq) FROM trades GROUP BY symbol HAVING max(seq) >= 2 "
                           "LIMIT 1").fetchone()
    assert row is not None, "the flow made no symbol with two trades"
    symbol, last = row
    _sql(dsn, f"DELETE FROM trades WHERE symbol = '{symbol}' AND seq = {last - 1}")
    found = _violated(_check(dsn, acked))
    assert found["trade_sequence_gapless"] == [f"{symbol}:{last}"]


def test_the_checker_cannot_write(book: tuple[str, list[str]]) -> None:
    dsn, _ = book
    writer = IntegrityDefinitions(checks={"sneaky": IntegrityCheck(
        description="writes", sql="SELECT nextval('orders_id_seq')")})  # fmt: skip
    checks = _check(dsn, [], writer)
    assert checks["sneaky"]["violations"] is None and "read-only" in checks["sneaky"]["error"]


def test_a_check_past_its_statement_timeout_is_an_error_not_a_pass(book: tuple[str, list[str]]) -> None:
    dsn, _ = book
    slow = IntegrityDefinitions(statement_timeout_ms=200, checks={"slow": IntegrityCheck(
        description="sleeps", sql="SELECT 1 AS id FROM pg_sleep(5)")})  # fmt: skip
    checks = _check(dsn, [], slow)
    assert checks["slow"]["violations"] is None and "statement_timeout" in checks["slow"]["error"]
    assert checks["slow"]["elapsed_s"] < 2


def test_an_unreachable_database_is_recorded_with_the_reason(tmp_path: Path) -> None:
    check_integrity(tmp_path, "host=127.0.0.1 port=1 dbname=x connect_timeout=1", acked=[], clock=Clock(),
                    definitions=_shipped(), retry_for=0)  # fmt: skip
    with pytest.raises(RuntimeError, match="not reachable after recovery"):
        analyze_integrity(tmp_path)


def test_the_run_directory_section_lists_the_violations(book: tuple[str, list[str]], tmp_path: Path) -> None:
    dsn, acked = book
    _sql(dsn, "DELETE FROM orders WHERE client_order_id = 'hb-run-1'")
    check_integrity(tmp_path, dsn, acked=acked, clock=Clock(), definitions=_shipped(), source="shipped")
    section = analyze_integrity(tmp_path)
    assert section["violations"] == 1 and section["failed_checks"] == [] and section["acked_orders"] == len(acked)


def test_the_checks_stay_cheap_on_a_hundred_thousand_orders(trading_dsn: str) -> None:
    """100,000 orders (80,000 filled in pairs by 40,000 trades, 20,000 resting) on 50 symbols: clean, and
    every check together well within a second or two (a session of drills leaves tens of thousands)."""
    _sql(trading_dsn,
         "INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
         "SELECT side || '-' || g, 'S' || (g % 50), CASE side WHEN 'b' THEN 'buy' ELSE 'sell' END, 100, 2, 0, "
         "'filled' FROM generate_series(1, 40000) AS g, (VALUES ('b'), ('s')) AS v (side)",
         "INSERT INTO trades (symbol, price, qty, buy_order_id, sell_order_id) "
         "SELECT b.symbol, 100, 2, b.id, s.id FROM orders b JOIN orders s "
         "ON s.client_order_id = 's-' || substr(b.client_order_id, 3) WHERE b.client_order_id LIKE 'b-%'",
         "INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
         "SELECT side || '-' || g, 'S' || (g % 50), CASE side WHEN 'rb' THEN 'buy' ELSE 'sell' END, "
         "CASE side WHEN 'rb' THEN 99 ELSE 101 END, 1, 1, 'open' "
         "FROM generate_series(1, 10000) AS g, (VALUES ('rb'), ('rs')) AS v (side)",
         "ANALYZE orders", "ANALYZE trades")  # fmt: skip
    record = run_checks(trading_dsn, _shipped(), acked=[f"rb-{i}" for i in range(1, 1001)], source="test",
                        clock=Clock(), retry_for=0)  # fmt: skip
    assert _violated({c["name"]: c for c in record["checks"]}) == {}
    print(f"integrity checks on 100k orders: {record['elapsed_s']:.3f} s "
          + ", ".join(f"{c['name']} {c['elapsed_s'] * 1000:.0f} ms" for c in record["checks"]))
    assert record["elapsed_s"] < 5
