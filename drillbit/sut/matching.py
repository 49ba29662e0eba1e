"""Order placement, matching and cancellation: each one transaction, serialized per symbol.

Every mutation of a symbol's book takes ``pg_advisory_xact_lock(hashtext(symbol))`` first, so
concurrent replicas match one symbol one order at a time (no double fills, no negative
remaining) while different symbols proceed in parallel. An order is acknowledged only after its
transaction (the order, its fills and the trades) has committed.

Market data: each trade gets its symbol's next sequence number (``seq``, 1, 2, 3... with no gap:
assigned under the symbol's lock, rolled back with the transaction), and the transaction ends with
``pg_notify('trades', ...)``: PostgreSQL delivers it to every listener (``drillbit.sut.feed``) when,
and only if, the transaction commits, in commit order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

__all__ = [
    "TRADES_CHANNEL",
    "Conflict",
    "NotFound",
    "OrderRequest",
    "book",
    "cancel",
    "get_order",
    "market_data",
    "place",
    "symbol_of",
    "trade_event",
    "trades_after",
    "trades_since",
]

Side = Literal["buy", "sell"]
OPEN = ("open", "partially_filled")
_BATCH = 100

_ORDER_COLS = "id, client_order_id, symbol, side, price, qty, remaining, status, created_at"
#: the channel trades are announced on (see the module's docstring)
TRADES_CHANNEL = "trades"
#: trades per notification: a payload stays well under PostgreSQL's 8000-byte limit
_NOTIFY_BATCH = 40
_TRADE_COLS = "symbol, seq, id, price, qty, created_at"


class NotFound(Exception):
    """No such order."""


class Conflict(Exception):
    """The request contradicts the order's state (reused id with other terms, cancel of a fill)."""


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    price: Decimal
    qty: int
    client_order_id: str

    def same_terms(self, order: dict[str, Any]) -> bool:
        return (order["symbol"], order["side"], Decimal(order["price"]), order["qty"]) == (
            self.symbol,
            self.side,
            self.price,
            self.qty,
        )


def _price(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _render(order: dict[str, Any], fills: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": order["id"],
        "client_order_id": order["client_order_id"],
        "symbol": order["symbol"],
        "side": order["side"],
        "price": _price(order["price"]),
        "qty": order["qty"],
        "remaining": order["remaining"],
        "status": order["status"],
        "fills": [{"trade_id": f["id"], "price": _price(f["price"]), "qty": f["qty"]} for f in fills],
        "created_at": order["created_at"].isoformat(),
    }


async def _lock_symbol(cur: psycopg.AsyncCursor[Any], symbol: str) -> None:
    await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (symbol,))


async def _fills_of(cur: psycopg.AsyncCursor[Any], order_id: int) -> list[dict[str, Any]]:
    await cur.execute(
        "SELECT id, price, qty FROM trades WHERE buy_order_id = %s OR sell_order_id = %s ORDER BY id",
        (order_id, order_id),
    )
    return list(await cur.fetchall())


async def _existing(cur: psycopg.AsyncCursor[Any], req: OrderRequest) -> dict[str, Any] | None:
    await cur.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE client_order_id = %s", (req.client_order_id,))
    order = await cur.fetchone()
    if order is None:
        return None
    if not req.same_terms(order):
        raise Conflict(f"client_order_id {req.client_order_id!r} was already used for a different order")
    return _render(order, await _fills_of(cur, order["id"]))


async def place(conn: psycopg.AsyncConnection[Any], req: OrderRequest) -> tuple[dict[str, Any], bool]:
    """Place a limit order; return (order, created). A replayed client_order_id is not created."""
    try:
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            await _lock_symbol(cur, req.symbol)
            replay = await _existing(cur, req)
            if replay is not None:
                return replay, False
            return await _match(cur, req), True
    except psycopg.errors.UniqueViolation:
        # the same client_order_id raced in on another symbol's lock: it exists now
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            replay = await _existing(cur, req)
        if replay is None:
            raise
        return replay, False


async def _match(cur: psycopg.AsyncCursor[Any], req: OrderRequest) -> dict[str, Any]:
    await cur.execute(
        f"INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
        f"VALUES (%s, %s, %s, %s, %s, %s, 'open') RETURNING {_ORDER_COLS}",
        (req.client_order_id, req.symbol, req.side, req.price, req.qty, req.qty),
    )
    order = await cur.fetchone()
    assert order is not None
    opposite, cmp, direction = ("sell", "<=", "ASC") if req.side == "buy" else ("buy", ">=", "DESC")
    remaining = req.qty
    fills: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    while remaining > 0:
        await cur.execute(
            f"SELECT id, price, remaining FROM orders WHERE symbol = %s AND side = %s "
            f"AND status IN ('open', 'partially_filled') AND price {cmp} %s "
            f"ORDER BY price {direction}, id LIMIT {_BATCH}",
            (req.symbol, opposite, req.price),
        )
        resting = await cur.fetchall()
        if not resting:
            break
        for r in resting:
            qty = min(remaining, r["remaining"])
            left = r["remaining"] - qty
            await cur.execute(
                "UPDATE orders SET remaining = %s, status = %s, updated_at = clock_timestamp() WHERE id = %s",
                (left, "filled" if left == 0 else "partially_filled", r["id"]),
            )
            buy_id, sell_id = (order["id"], r["id"]) if req.side == "buy" else (r["id"], order["id"])
            seq = await _next_seq(cur, req.symbol) if not trades else trades[-1]["seq"] + 1
            await cur.execute(
                "INSERT INTO trades (symbol, seq, price, qty, buy_order_id, sell_order_id) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_TRADE_COLS}",
                (req.symbol, seq, r["price"], qty, buy_id, sell_id),
            )
            trade = await cur.fetchone()
            assert trade is not None
            trades.append(trade)
            fills.append({"id": trade["id"], "price": trade["price"], "qty": trade["qty"]})
            remaining -= qty
            if remaining == 0:
                break
    if fills:
        status = "filled" if remaining == 0 else "partially_filled"
        await cur.execute(
            "UPDATE orders SET remaining = %s, status = %s, updated_at = clock_timestamp() WHERE id = %s",
            (remaining, status, order["id"]),
        )
        order = {**order, "remaining": remaining, "status": status}
        await _announce(cur, trades)
    return _render(order, fills)


async def _next_seq(cur: psycopg.AsyncCursor[Any], symbol: str) -> int:
    """The symbol's next trade sequence number (the caller holds the symbol's lock)."""
    await cur.execute("SELECT coalesce(max(seq), 0) + 1 AS next FROM trades WHERE symbol = %s", (symbol,))
    row = await cur.fetchone()
    assert row is not None
    return int(row["next"])


def trade_event(trade: dict[str, Any]) -> dict[str, Any]:
    """A trade as market data carries it."""
    return {"symbol": trade["symbol"], "seq": trade["seq"], "trade_id": trade["id"], "price": _price(trade["price"]),
            "qty": trade["qty"], "at": trade["created_at"].isoformat()}  # fmt: skip


async def _announce(cur: psycopg.AsyncCursor[Any], trades: list[dict[str, Any]]) -> None:
    """Queue the trades' notification: delivered to listeners when the transaction commits."""
    for i in range(0, len(trades), _NOTIFY_BATCH):
        payload = json.dumps([trade_event(t) for t in trades[i : i + _NOTIFY_BATCH]], separators=(",", ":"))
        await cur.execute("SELECT pg_notify(%s, %s)", (TRADES_CHANNEL, payload))


async def trades_after(
    conn: psycopg.AsyncConnection[Any], symbol: str, after_seq: int, limit: int
) -> list[dict[str, Any]]:
    """A symbol's trades with a sequence number above ``after_seq``, in order (a reader's gap fill)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_TRADE_COLS} FROM trades WHERE symbol = %s AND seq > %s ORDER BY seq LIMIT %s",
            (symbol, after_seq, limit),
        )
        return [trade_event(t) for t in await cur.fetchall()]


async def trades_since(conn: psycopg.AsyncConnection[Any], since: datetime) -> list[dict[str, Any]]:
    """Every trade created after ``since``, oldest first (the feed's catch-up after it reconnects)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_TRADE_COLS} FROM trades WHERE created_at > %s AND seq IS NOT NULL ORDER BY created_at, id",
            (since,),
        )
        return [trade_event(t) for t in await cur.fetchall()]


async def get_order(conn: psycopg.AsyncConnection[Any], order_id: int) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE id = %s", (order_id,))
        order = await cur.fetchone()
        if order is None:
            raise NotFound(order_id)
        return _render(order, await _fills_of(cur, order_id))


async def symbol_of(conn: psycopg.AsyncConnection[Any], order_id: int) -> str:
    """The symbol of an order (it never changes: a cancel learns which queue to wait in)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT symbol FROM orders WHERE id = %s", (order_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(order_id)
    return str(row[0])


async def cancel(conn: psycopg.AsyncConnection[Any], order_id: int) -> dict[str, Any]:
    """Cancel a resting order. Cancelling a cancelled order is a no-op; a filled one conflicts."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT symbol FROM orders WHERE id = %s", (order_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(order_id)
        await _lock_symbol(cur, row["symbol"])
        await cur.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE id = %s", (order_id,))
        order = await cur.fetchone()
        assert order is not None
        if order["status"] == "filled":
            raise Conflict(f"order {order_id} is already filled")
        if order["status"] != "cancelled":
            await cur.execute(
                f"UPDATE orders SET status = 'cancelled', updated_at = clock_timestamp() WHERE id = %s "
                f"RETURNING {_ORDER_COLS}",
                (order_id,),
            )
            order = await cur.fetchone()
            assert order is not None
        return _render(order, await _fills_of(cur, order_id))


async def book(conn: psycopg.AsyncConnection[Any], symbol: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"symbol": symbol}
    async with conn.cursor() as cur:
        for side, key, direction in (("buy", "bids", "DESC"), ("sell", "asks", "ASC")):
            await cur.execute(
                f"SELECT price, sum(remaining) FROM orders WHERE symbol = %s AND side = %s "
                f"AND status IN ('open', 'partially_filled') GROUP BY price ORDER BY price {direction} LIMIT %s",
                (symbol, side, depth),
            )
            out[key] = [[_price(p), int(q)] for p, q in await cur.fetchall()]
    return out


async def market_data(conn: psycopg.AsyncConnection[Any], symbol: str) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT price, qty, created_at FROM trades WHERE symbol = %s ORDER BY id DESC LIMIT 1", (symbol,)
        )
        last = await cur.fetchone()
        await cur.execute(
            "SELECT (SELECT max(price) FROM orders WHERE symbol = %(s)s AND side = 'buy' "
            "        AND status IN ('open', 'partially_filled')),"
            "       (SELECT min(price) FROM orders WHERE symbol = %(s)s AND side = 'sell' "
            "        AND status IN ('open', 'partially_filled'))",
            {"s": symbol},
        )
        best = await cur.fetchone()
    assert best is not None
    return {
        "symbol": symbol,
        "last_trade": None if last is None else {"price": _price(last[0]), "qty": last[1], "at": last[2].isoformat()},
        "best_bid": None if best[0] is None else _price(best[0]),
        "best_ask": None if best[1] is None else _price(best[1]),
    }
