"""Admission to the database: per-symbol serialization inside the replica and two fixed pools.

A placed order (or a cancel) waits in its symbol's queue *before* it takes a database connection:
a symbol admits one write at a time (an ``asyncio.Lock``, first come first served), so orders
queued on a busy symbol hold no connection, and only writes that are matching hold one. The
PostgreSQL advisory lock in :mod:`drillbit.sut.matching` still serializes a symbol across replicas; here
it is contended by at most one transaction per replica and symbol.

Reads (order book, market data, an order, readiness) have a pool of their own, so they never
queue behind writes for a connection.

Each pool records how many of its connections are in use and the most ever in use at once, so
its size is set from measured concurrency (``sut_db_connections_in_use_peak`` on /metrics, read
by ``benchmarks/pool.py``), not guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

__all__ = ["Overloaded", "PoolUsage", "SymbolQueues", "TrackedPool"]


class Overloaded(Exception):
    """The request waited its whole deadline for admission: shed (503 with Retry-After)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Gauge:
    """A level and the highest it has been."""

    now: int = 0
    peak: int = 0

    def up(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def down(self) -> None:
        self.now -= 1


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


@dataclass
class SymbolQueues:
    """One queue per symbol: a symbol's writes run one at a time, in arrival order, and different
    symbols never wait for each other. A symbol's queue exists only while a write of it holds or
    waits (memory follows the symbols in flight, not every symbol ever traded)."""

    waiting: _Gauge = field(default_factory=_Gauge)
    _queues: dict[str, _Queue] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def hold(self, symbol: str) -> AsyncIterator[None]:
        """Wait for the symbol's turn (no connection held meanwhile), then hold it."""
        queue = self._queues.setdefault(symbol, _Queue())
        queue.users += 1
        try:
            self.waiting.up()
            try:
                await queue.lock.acquire()
            finally:
                self.waiting.down()
            try:
                yield
            finally:
                queue.lock.release()
        finally:
            queue.users -= 1
            if queue.users == 0:
                del self._queues[symbol]


@dataclass(frozen=True)
class PoolUsage:
    name: str
    size: int
    in_use: int
    peak_in_use: int
    waits: int
    wait_s_total: float
    discarded: int


class TrackedPool:
    """An ``AsyncConnectionPool`` of fixed size that counts connections in use and time waited."""

    def __init__(self, name: str, dsn: str, size: int, **kwargs: Any) -> None:
        if size < 1:
            raise ValueError(f"{name} pool size must be >= 1")
        self.name, self.size = name, size
        # no ``check=`` here: psycopg_pool's own check sleeps a back-off (1 s and more) after a broken
        # connection before it tries the next, longer than a request's wait for a connection, so one
        # connection a failover broke long ago failed the request that drew it (see ``_checked``)
        self.pool = AsyncConnectionPool(dsn, min_size=size, max_size=size, open=False, name=name, **kwargs)
        self._in_use = _Gauge()
        self._waits = 0
        self._wait_s = 0.0
        self.discarded = 0

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self, timeout: float) -> None:
        await self.pool.close(timeout=timeout)

    def warm(self) -> bool:
        """Every connection the pool may hold is open (idle or in use)."""
        available = self.pool.get_stats().get("pool_available", 0)
        return self._in_use.now + available >= self.size

    def exhausted(self) -> bool:
        """Every connection the pool may have is checked out (a wait here is contention, not an outage)."""
        return self._in_use.now >= self.size

    async def _checked(self, timeout: float) -> psycopg.AsyncConnection[Any]:
        """A connection that just answered an empty round trip, within ``timeout``.

        A broken one (its server restarted, failed over or cut it) goes back to the pool, which
        discards it and opens a replacement, and the next idle one is tried at once: at most every
        connection the pool has plus the one it opens, so a dead database still ends in
        ``PoolTimeout`` and never in a busy loop."""
        deadline = time.monotonic() + timeout
        for _ in range(self.size + 1):
            conn = await self.pool.getconn(timeout=deadline - time.monotonic())
            try:
                await AsyncConnectionPool.check_connection(conn)
            except psycopg.Error:
                self.discarded += 1
                await self.pool.putconn(conn)
                continue
            return conn
        raise PoolTimeout(f"no working connection in pool {self.name!r} after {self.size + 1} tries")

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """As ``AsyncConnectionPool.connection`` (commit on success, roll back on error, then back
        to the pool), with a connection checked when handed out (``_checked``)."""
        start = time.perf_counter()
        conn = await self._checked(timeout)
        self._waits += 1
        self._wait_s += time.perf_counter() - start
        self._in_use.up()
        try:
            async with conn:
                yield conn
        finally:
            self._in_use.down()
            await self.pool.putconn(conn)

    def usage(self) -> PoolUsage:
        return PoolUsage(
            self.name, self.size, self._in_use.now, self._in_use.peak, self._waits, self._wait_s, self.discarded
        )
