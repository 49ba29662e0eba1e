"""The replica's market-data feed: every committed trade, pushed to its stream subscribers.

One connection per replica LISTENs on the trades channel of the primary
(:mod:`drillbit.sut.matching` notifies it in each trade's transaction, so a trade is announced
when, and only if, it commits, in commit order, whichever replica matched it). The feed fans each
notification out to the replica's subscribers (``GET /marketdata/stream``, server-sent events).

While the listening connection is down (a failover, a partition) nothing is announced: the feed
says ``down`` to its subscribers, reconnects (to the primary the multi-host DSN finds), and once it
listens again it replays every trade committed since shortly before the last one it announced
(``CATCH_UP_MARGIN_S``: commits land out of creation order by at most a transaction's length), so
a subscriber misses nothing a failover did not itself lose. A trade is announced once per replica
(the trade ids announced recently are remembered).

The connection is checked every ``CHECK_S`` while it is quiet: a primary demoted under it, or a
connection that stopped answering, is dropped and the feed reconnects.

A subscriber that falls ``MAX_BACKLOG`` batches behind is cut off (``overflow``) rather than let
the replica's memory grow: an exchange drops a slow consumer, and the reader recovers by sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from drillbit.sut import matching

__all__ = ["APPLICATION_NAME", "CATCH_UP_MARGIN_S", "CHECK_S", "MAX_BACKLOG", "Subscription", "TradeFeed"]

log = logging.getLogger(__name__)

#: after a reconnect, trades created this long before the last one announced are looked at again
CATCH_UP_MARGIN_S = 5.0
#: a quiet listening connection is checked (still the writable primary, still answering) this often
CHECK_S = 1.0
#: the listening connection's application_name (pg_stat_activity tells it from the pools')
APPLICATION_NAME = "drillbit-sut-feed"
#: batches a subscriber may have waiting before it is cut off
MAX_BACKLOG = 2_000
#: trade ids remembered to announce each trade once (a catch-up overlaps what was announced)
_REMEMBERED = 100_000

State = Literal["down", "live"]


@dataclass(eq=False)
class Subscription:
    """One stream's queue of trade batches (``symbols``: only these; None: every symbol)."""

    symbols: frozenset[str] | None
    batches: deque[list[dict[str, Any]]] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    notices: deque[dict[str, Any]] = field(default_factory=deque)  # feed state changes, in order

    def offer(self, trades: list[dict[str, Any]]) -> None:
        chosen = trades if self.symbols is None else [t for t in trades if t["symbol"] in self.symbols]
        if not chosen or self.overflowed:
            return
        if len(self.batches) >= MAX_BACKLOG:
            self.overflowed = True
            self.batches.clear()
        else:
            self.batches.append(chosen)
        self.ready.set()

    def notice(self, event: dict[str, Any]) -> None:
        self.notices.append(event)
        self.ready.set()

    async def wait(self, timeout: float) -> None:
        """Until something is queued, or ``timeout`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout)
        self.ready.clear()


class TradeFeed:
    """The replica's one listener on the trades channel, and its subscribers."""

    def __init__(self, dsn: str, *, connect_timeout: float = 2.0, retry_s: float = 0.2) -> None:
        self.dsn, self.connect_timeout, self.retry_s = dsn, connect_timeout, retry_s
        self.state: State = "down"
        self.subscribers: set[Subscription] = set()
        self.published = 0  # trades announced
        self.replayed = 0  # of which found by a catch-up after a reconnect
        self.reconnects = 0
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._last_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    # -- subscribers ----------------------------------------------------------------------------
    def subscribe(self, symbols: Iterable[str] | None = None) -> Subscription:
        sub = Subscription(None if symbols is None else frozenset(symbols))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def publish(self, trades: list[dict[str, Any]], *, replay: bool = False) -> int:
        """Announce the trades not announced before; how many were new."""
        fresh = [t for t in trades if t["trade_id"] not in self._seen]
        for t in fresh:
            self._seen[t["trade_id"]] = None
            at = datetime.fromisoformat(t["at"])
            if self._last_at is None or at > self._last_at:
                self._last_at = at
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        if fresh:
            self.published += len(fresh)
            self.replayed += len(fresh) if replay else 0
            for sub in list(self.subscribers):
                sub.offer(fresh)
        return len(fresh)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            for sub in list(self.subscribers):
                sub.notice({"feed": state})

    # -- the listener ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="trade-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_state("down")

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as err:
                log.warning("market-data feed: %s: %s; reconnecting", type(err).__name__, err)
            self._set_state("down")
            self.reconnects += 1
            await asyncio.sleep(self.retry_s)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, application_name=APPLICATION_NAME,
                                                    connect_timeout=max(1, round(self.connect_timeout)))
        async with conn:
            await conn.execute(f"LISTEN {matching.TRADES_CHANNEL}")
            if self._last_at is not None:  # listening again: what committed meanwhile, once
                since = self._last_at - timedelta(seconds=CATCH_UP_MARGIN_S)
                self.publish(await matching.trades_since(conn, since), replay=True)
            self._set_state("live")
            while True:
                async for note in conn.notifies(timeout=CHECK_S):
                    self.publish(json.loads(note.payload))
                await self._check(conn)

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The connection still answers, from the writable primary; else raise (and reconnect)."""
        async with asyncio.timeout(self.connect_timeout):
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
        if row is None or row[0]:
            raise psycopg.OperationalError("the feed's server is no longer the primary")
