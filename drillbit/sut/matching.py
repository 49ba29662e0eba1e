"""Order placement, matching and cancellation: each one transaction, serialized per symbol.

Every mutation of a symbol's book takes ``pg_advisory_xact_lock(hashtext(symbol))`` first, so
concurrent replicas match one symbol one order at a time (no double fills, no negative
remaining) while different symbols proceed in parallel. An order is acknowledged only after its
transaction (the order, its fills and the trades) has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

__all__ = [
    "Conflict",
    "NotFound",
    "OrderRequest",
    "book",
    "cancel",
    "get_order",
    "market_data",
    "place",
    "symbol_of",
]

Side = Literal["buy", "sell"]
OPEN = ("open", "partially_filled")
_BATCH = 100

_ORDER_COLS = "id, client_order_id, symbol, side, price, qty, remaining, status, created_at"


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
            await cur.execute(
                "INSERT INTO trades (symbol, price, qty, buy_order_id, sell_order_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id, price, qty",
                (req.symbol, r["price"], qty, buy_id, sell_id),
            )
            fill = await cur.fetchone()
            assert fill is not None
            fills.append(fill)
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
    return _render(order, fills)


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
