"""The trading API (ASGI, Starlette). All state lives in PostgreSQL: any replica serves any request.

Admission (:mod:`drillbit.sut.admission`): a write waits in its symbol's queue before it takes a connection
from the write pool, reads use a pool of their own. Every
request has one deadline (``request_timeout``) for admission and database work together:

- it ran out while waiting for admission (its symbol's turn, or a pool whose connections are all
  in use), or was admitted with less than a tenth of it left:
  the request is shed, 503 with ``Retry-After`` and ``{"error": "overloaded", "shed": true}``,
  counted in ``sut_shed_total``;
- the database failed or ran out the deadline: 503 "database unavailable" (no ``Retry-After``:
  a failure, not a deliberate refusal), counted in ``sut_db_errors_total``.

A connection that landed on a demoted (read-only) primary is closed so the pool reconnects
through the multi-host DSN to the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drillbit.sut import matching
from drillbit.sut.admission import Overloaded, SymbolQueues, TrackedPool
from drillbit.sut.feed import TradeFeed

__all__ = ["DEFAULT_VERSION", "Lifecycle", "Settings", "create_app", "wait_ready"]

log = logging.getLogger(__name__)

_SYMBOL_PATTERN = r"^[A-Z0-9.\-]{1,16}$"
#: the version a replica reports when neither the server nor $DRILL_APP_VERSION names one
DEFAULT_VERSION = "v1"
#: seconds a shed request is told to wait before it retries
RETRY_AFTER_S = 1
#: a market-data stream with nothing to say sends a heartbeat this often (a reader tells a quiet feed from a dead one)
STREAM_HEARTBEAT_S = 1.0
#: most symbols one stream may name (?symbols=A,B,...)
STREAM_MAX_SYMBOLS = 5_000
#: a write admitted with less than this share of its deadline left is shed instead of started (else
#: a queue behind a stuck transaction would feed the database one doomed transaction after another)
MIN_WORK_SHARE = 0.1


@dataclass(frozen=True)
class Settings:
    dsn: str
    replica: str
    # pool sizes: from the peaks benchmarks/pool.py measures at the default load, with room to spare
    write_pool_size: int = 4
    read_pool_size: int = 4
    request_timeout: float = 2.0  # admission and database work of one request, together
    getconn_timeout: float = 0.5  # longest wait for a connection from a pool that is not all in use
    version: str = DEFAULT_VERSION  # the deployed code version: x-drill-version header and /healthz

    @classmethod
    def from_env(cls, dsn: str | None = None, replica: str | None = None, **overrides: Any) -> Settings:
        env = os.environ
        values: dict[str, Any] = {
            "dsn": dsn or env.get("DRILL_SUT_DSN", ""),
            "replica": replica or env.get("DRILL_REPLICA") or f"{socket.gethostname()}/{os.getpid()}",
        }
        if "DRILL_SUT_WRITE_POOL_SIZE" in env:
            values["write_pool_size"] = int(env["DRILL_SUT_WRITE_POOL_SIZE"])
        if "DRILL_SUT_READ_POOL_SIZE" in env:
            values["read_pool_size"] = int(env["DRILL_SUT_READ_POOL_SIZE"])
        if env.get("DRILL_APP_VERSION"):
            values["version"] = env["DRILL_APP_VERSION"]
        if "DRILL_SUT_REQUEST_TIMEOUT" in env:
            values["request_timeout"] = float(env["DRILL_SUT_REQUEST_TIMEOUT"])
        values.update(overrides)
        if not values["dsn"]:
            raise ValueError("no database DSN: pass dsn= or set DRILL_SUT_DSN")
        return cls(**values)


@dataclass
class Lifecycle:
    """What the server tells the app about the replica's life; read on every response.

    ``draining``: the replica stopped accepting connections and is about to exit; every response
    from then on carries ``Connection: close``, so a keep-alive client learns it from an answer
    instead of from a connection closed under its next request.
    """

    draining: bool = False


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Annotated[str, Field(pattern=_SYMBOL_PATTERN)]
    side: Literal["buy", "sell"]
    price: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=8, allow_inf_nan=False)]
    qty: Annotated[StrictInt, Field(gt=0, le=1_000_000_000)]
    client_order_id: Annotated[str, Field(min_length=1, max_length=64)]


def _attr(obj: object, name: str) -> float:
    return float(getattr(obj, name))


def _reading(pool: TrackedPool, field: str) -> Callable[[], float]:
    """A scrape-time reading of one figure of a pool's usage."""
    return lambda: float(getattr(pool.usage(), field))


class Metrics:
    """Per-app Prometheus metrics (no global registry: several apps can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "sut_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.orders = Counter("sut_orders_total", "Order requests by result", ["result"], registry=self.registry)
        self.trades = Counter("sut_trades_total", "Trades executed", registry=self.registry)
        self.db_errors = Counter("sut_db_errors_total", "Requests failed by the database", registry=self.registry)
        self.shed = Counter(
            "sut_shed_total", "Requests refused with 503 + Retry-After: no admission within the deadline",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self._in_use = Gauge(
            "sut_db_connections_in_use", "Pooled connections checked out", ["pool"], registry=self.registry
        )
        self._peak = Gauge(
            "sut_db_connections_in_use_peak", "Most pooled connections ever checked out at once", ["pool"],
            registry=self.registry,
        )  # fmt: skip
        self._size = Gauge("sut_db_pool_size", "Connections a pool may hold", ["pool"], registry=self.registry)
        self._wait = Gauge(
            "sut_db_pool_wait_seconds_total", "Time requests waited for a pooled connection", ["pool"],
            registry=self.registry,
        )  # fmt: skip
        self._discarded = Gauge(
            "sut_db_connections_discarded_total", "Pooled connections found broken when handed out, and replaced",
            ["pool"], registry=self.registry,
        )  # fmt: skip
        self._queued = Gauge(
            "sut_matching_waiting", "Writes waiting in their symbol's queue", registry=self.registry
        )
        self._queued_peak = Gauge(
            "sut_matching_waiting_peak", "Most writes ever waiting in symbol queues at once", registry=self.registry
        )

    def watch_feed(self, feed: TradeFeed) -> None:
        """Export the market-data feed's figures, read at scrape time."""
        up = Gauge("sut_marketdata_feed_up", "1 while the market-data feed listens for trades", registry=self.registry)
        up.set_function(lambda: 1.0 if feed.state == "live" else 0.0)
        subs = Gauge("sut_marketdata_subscribers", "Open market-data streams", registry=self.registry)
        subs.set_function(lambda: float(len(feed.subscribers)))
        counts = {"published": "Trades announced on the feed",
                  "replayed": "Trades announced late, by a catch-up after a reconnect",
                  "reconnects": "Times the feed lost its listening connection"}  # fmt: skip
        for name, doc in counts.items():
            gauge = Gauge(f"sut_marketdata_{name}_total", doc, registry=self.registry)
            gauge.set_function(functools.partial(_attr, feed, name))

    def watch(self, queues: SymbolQueues, *pools: TrackedPool) -> None:
        """Export admission figures, read at scrape time."""
        for pool in pools:
            self._in_use.labels(pool.name).set_function(_reading(pool, "in_use"))
            self._peak.labels(pool.name).set_function(_reading(pool, "peak_in_use"))
            self._size.labels(pool.name).set_function(_reading(pool, "size"))
            self._wait.labels(pool.name).set_function(_reading(pool, "wait_s_total"))
            self._discarded.labels(pool.name).set_function(_reading(pool, "discarded"))
        self._queued.set_function(lambda: queues.waiting.now)
        self._queued_peak.set_function(lambda: queues.waiting.peak)


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


class _DatabaseUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Backend:
    """What a replica talks to the database through (built in the app's lifespan)."""

    reads: TrackedPool
    writes: TrackedPool
    symbols: SymbolQueues

    @classmethod
    def create(cls, cfg: Settings) -> Backend:
        # reconnect_timeout=0: a failed reconnect gives up at once instead of backing off 1, 2, 4...
        # seconds; the next request grows the pool again, so the app follows a failover promptly.
        def pool(name: str, size: int) -> TrackedPool:
            return TrackedPool(name, cfg.dsn, size, reconnect_timeout=0)

        return cls(pool("read", cfg.read_pool_size), pool("write", cfg.write_pool_size), SymbolQueues())

    async def open(self) -> None:
        await self.reads.open()
        await self.writes.open()

    async def close(self, timeout: float) -> None:
        await self.reads.close(timeout)
        await self.writes.close(timeout)


@contextlib.asynccontextmanager
async def _db(request: Request, write_symbol: str | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection within the request's deadline: a write (``write_symbol``) first waits for
    its symbol's turn, then takes a write connection; a read takes a read connection.

    Refused before its database work began (the deadline passed while it waited for its symbol, or
    for a pool whose connections were all in use), a request is shed (:class:`Overloaded`): it did
    nothing, so it is safe to retry. A database failure, or a deadline passed during the database
    work or while a pool reconnects, is ``_DatabaseUnavailable``."""
    settings: Settings = request.app.state.settings
    backend: Backend = request.app.state.backend
    metrics: Metrics = request.app.state.metrics
    pool = backend.reads if write_symbol is None else backend.writes
    stage, contended = "symbol", False
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(settings.request_timeout) as deadline, contextlib.AsyncExitStack() as stack:
            if write_symbol is not None:
                await stack.enter_async_context(backend.symbols.hold(write_symbol))
                if (deadline.when() or 0.0) - loop.time() < MIN_WORK_SHARE * settings.request_timeout:
                    raise TimeoutError  # admitted too late to finish: shed rather than start
            stage, contended = "pool", pool.exhausted()
            # a pool with idle connections hands one out at once; one without, and not because
            # they are all in use, is reconnecting (database trouble): fail fast rather than queue
            wait = settings.request_timeout if contended else settings.getconn_timeout
            conn = await stack.enter_async_context(pool.connection(timeout=wait))
            stage = "database"
            try:
                yield conn
            except psycopg.errors.ReadOnlySqlTransaction:
                await conn.close()  # landed on a demoted primary: make the pool reconnect
                raise
    except (TimeoutError, PoolTimeout) as err:
        if stage == "symbol" or (stage == "pool" and (contended or pool.exhausted())):
            reason = "symbol queue" if stage == "symbol" else f"{pool.name} pool"
            metrics.shed.labels(reason).inc()
            log.warning("shed: no %s within %.1f s", reason, settings.request_timeout)
            raise Overloaded(reason) from None
        metrics.db_errors.inc()
        log.warning("database unavailable: %s during %s", type(err).__name__, stage)
        raise _DatabaseUnavailable from None
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.OperationalError) as err:
        metrics.db_errors.inc()
        log.warning("database unavailable: %s: %s", type(err).__name__, err)
        raise _DatabaseUnavailable from None


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


async def place_order(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    data = await _json_body(request)
    if not isinstance(data, dict):
        metrics.orders.labels("rejected").inc()
        return _error(422, "body must be a JSON object", "body")
    try:
        o = OrderIn.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        metrics.orders.labels("rejected").inc()
        field = ".".join(str(p) for p in first["loc"]) or "body"
        return _error(422, first["msg"], field)
    req = matching.OrderRequest(o.symbol, o.side, o.price, o.qty, o.client_order_id)
    try:
        async with _db(request, write_symbol=req.symbol) as conn:
            order, created = await matching.place(conn, req)
    except matching.Conflict as err:
        metrics.orders.labels("rejected").inc()
        return _error(409, str(err), "client_order_id")
    metrics.orders.labels("created" if created else "replayed").inc()
    if created:
        metrics.trades.inc(len(order["fills"]))
    return JSONResponse(order, status_code=201 if created else 200)


def _order_id(request: Request) -> int | None:
    raw = request.path_params["order_id"]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


OrderOp = Callable[[Request, int], Awaitable[dict[str, Any]]]


def _order_endpoint(op: OrderOp) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint on one order (/orders/{order_id}): the id checked, NotFound 404, Conflict 409."""

    async def endpoint(request: Request) -> Response:
        order_id = _order_id(request)
        if order_id is None:
            return _error(422, "order id must be a positive integer", "id")
        try:
            return JSONResponse(await op(request, order_id))
        except matching.NotFound:
            return _error(404, "order not found", "id")
        except matching.Conflict as err:
            return _error(409, str(err), "id")

    return endpoint


async def _read_order(request: Request, order_id: int) -> dict[str, Any]:
    async with _db(request) as conn:
        return await matching.get_order(conn, order_id)


async def _cancel_order(request: Request, order_id: int) -> dict[str, Any]:
    async with _db(request) as conn:
        symbol = await matching.symbol_of(conn, order_id)
    async with _db(request, write_symbol=symbol) as conn:
        return await matching.cancel(conn, order_id)


get_order = _order_endpoint(_read_order)
cancel_order = _order_endpoint(_cancel_order)


_SYMBOL = re.compile(_SYMBOL_PATTERN)


def _symbol(request: Request) -> str | None:
    s: str = request.path_params["symbol"]
    return s if _SYMBOL.match(s) else None


async def get_book(request: Request) -> Response:
    symbol = _symbol(request)
    if symbol is None:
        return _error(422, "symbol must be 1-16 of A-Z 0-9 . -", "symbol")
    raw_depth = request.query_params.get("depth", "10")
    if not raw_depth.isdigit() or not 1 <= int(raw_depth) <= 100:
        return _error(422, "depth must be an integer from 1 to 100", "depth")
    async with _db(request) as conn:
        return JSONResponse(await matching.book(conn, symbol, int(raw_depth)))


async def get_market_data(request: Request) -> Response:
    symbol = _symbol(request)
    if symbol is None:
        return _error(422, "symbol must be 1-16 of A-Z 0-9 . -", "symbol")
    async with _db(request) as conn:
        return JSONResponse(await matching.market_data(conn, symbol))


async def get_trades(request: Request) -> Response:
    """A symbol's trades after a sequence number (``?after_seq=N&limit=M``): a feed reader's gap fill."""
    symbol = _symbol(request)
    if symbol is None:
        return _error(422, "symbol must be 1-16 of A-Z 0-9 . -", "symbol")
    after, limit = request.query_params.get("after_seq", "0"), request.query_params.get("limit", "100")
    if not after.isdigit() or len(after) > 18:
        return _error(422, "after_seq must be a non-negative integer", "after_seq")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        return _error(422, "limit must be an integer from 1 to 1000", "limit")
    async with _db(request) as conn:
        trades = await matching.trades_after(conn, symbol, int(after), int(limit))
    return JSONResponse({"symbol": symbol, "trades": trades})


def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def marketdata_stream(request: Request) -> Response:
    """Server-sent events: every trade as it commits (``?symbols=A,B``: only those), ``id: SYMBOL:SEQ``.

    Events: ``hello`` (the replica, whether its feed is live), ``trade`` (symbol, seq, trade_id,
    price, qty, at), ``feed`` (the feed went down or came back: trades may arrive late, replayed),
    ``heartbeat`` (after ``STREAM_HEARTBEAT_S`` of silence), ``overflow`` (the reader fell too far
    behind and is cut off; it recovers by sequence). The stream ends when the replica drains."""
    raw = request.query_params.get("symbols")
    symbols = None
    if raw:
        symbols = raw.split(",")
        if len(symbols) > STREAM_MAX_SYMBOLS or not all(_SYMBOL.match(s) for s in symbols):
            return _error(422, f"symbols must be at most {STREAM_MAX_SYMBOLS} comma-separated symbols "
                               "of 1-16 of A-Z 0-9 . -", "symbols")  # fmt: skip
    feed: TradeFeed = request.app.state.feed
    lifecycle: Lifecycle = request.app.state.lifecycle
    replica = request.app.state.settings.replica
    sub = feed.subscribe(symbols)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield _sse("hello", {"replica": replica, "feed": feed.state})
            quiet = 0.0
            while not lifecycle.draining:
                await sub.wait(0.25)  # short: a draining replica ends its streams promptly
                if sub.overflowed:
                    yield _sse("overflow", {"replica": replica})
                    return
                sent = False
                while sub.notices:
                    yield _sse("feed", sub.notices.popleft())
                    sent = True
                while sub.batches:
                    batch = sub.batches.popleft()
                    yield b"".join(_sse("trade", t, f"{t['symbol']}:{t['seq']}") for t in batch)
                    sent = True
                quiet = 0.0 if sent else quiet + 0.25
                if quiet >= STREAM_HEARTBEAT_S:
                    yield _sse("heartbeat", {"feed": feed.state})
                    quiet = 0.0
        finally:
            feed.unsubscribe(sub)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip


async def healthz(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    lifecycle: Lifecycle = request.app.state.lifecycle
    return JSONResponse(
        {
            "status": "alive",
            "replica": settings.replica,
            "version": settings.version,
            "pid": os.getpid(),
            "draining": lifecycle.draining,
        }
    )


async def _writable(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT NOT pg_is_in_recovery()")
    row = await cur.fetchone()
    return bool(row and row[0])


async def readyz(request: Request) -> Response:
    if request.app.state.lifecycle.draining:
        return _error(503, "draining")
    async with _db(request) as conn:
        writable = await _writable(conn)
        if not writable:
            await conn.close()  # a server demoted under it: make the pool reconnect to the primary
    if not writable:
        return _error(503, "database is read-only")
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {"status": "ready", "replica": settings.replica, "pid": os.getpid(), "version": settings.version}
    )


async def wait_ready(app: Starlette, timeout: float, interval: float = 0.1) -> bool:
    """Poll until what /readyz checks holds (a pooled connection to a writable primary) and both
    pools have all their connections open, or ``timeout`` passes; True when ready. The server
    calls it after start-up, before it takes connections from a shared front door, so a new
    replica's first requests never wait for a connection to be opened."""
    settings: Settings = app.state.settings
    backend: Backend = app.state.backend
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with (
                asyncio.timeout(settings.request_timeout),
                backend.reads.connection(timeout=settings.request_timeout) as conn,
            ):
                if await _writable(conn) and backend.reads.warm() and backend.writes.warm():
                    return True
        except (psycopg.Error, PoolTimeout, TimeoutError) as err:
            log.info("not ready yet: %s: %s", type(err).__name__, err)
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


#: routes whose response is a stream: their latency is the time to the response's start, not its length
_STREAMS = frozenset({"/marketdata/stream"})


class _Instrument:
    """ASGI middleware: route-template latency histogram, the x-drill-replica and x-drill-version
    headers, and ``Connection: close`` on every response while the replica drains."""

    def __init__(
        self, app: ASGIApp, routes: list[Route], metrics: Metrics, replica: str, version: str, lifecycle: Lifecycle
    ) -> None:
        self.app, self.routes, self.metrics, self.lifecycle = app, routes, metrics, lifecycle
        self.replica, self.version = replica.encode(), version.encode()

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        started: list[float] = []

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(time.perf_counter())
                status[0] = message["status"]
                message.setdefault("headers", [])
                headers = [*message["headers"], (b"x-drill-replica", self.replica), (b"x-drill-version", self.version)]
                if self.lifecycle.draining:
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            route = self._template(scope)
            end = started[0] if route in _STREAMS and started else time.perf_counter()
            self.metrics.latency.labels(route, scope["method"], f"{status[0] // 100}xx").observe(end - start)


async def _unavailable(request: Request, exc: Exception) -> Response:
    return _error(503, "database unavailable")


async def _shed(request: Request, exc: Exception) -> Response:
    response = JSONResponse({"error": "overloaded", "shed": True, "reason": str(exc)}, status_code=503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def create_app(dsn: str | None = None, *, replica: str | None = None, **settings: Any) -> Starlette:
    """Build the app. ``dsn`` defaults to $DRILL_SUT_DSN; ``settings`` override Settings fields."""
    cfg = Settings.from_env(dsn, replica, **settings)
    metrics = Metrics()
    routes = [
        Route("/orders", place_order, methods=["POST"]),
        Route("/orders/{order_id}", get_order, methods=["GET"]),
        Route("/orders/{order_id}", cancel_order, methods=["DELETE"]),
        Route("/book/{symbol}", get_book, methods=["GET"]),
        Route("/marketdata/stream", marketdata_stream, methods=["GET"]),  # before /marketdata/{symbol}
        Route("/marketdata/{symbol}", get_market_data, methods=["GET"]),
        Route("/marketdata/{symbol}/trades", get_trades, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend = Backend.create(cfg)
        metrics.watch(backend.symbols, backend.reads, backend.writes)
        await backend.open()  # every connection opens now: a replica joins the front door warm
        app.state.backend = backend
        feed.start()
        try:
            yield
        finally:
            await feed.stop()
            await backend.close(timeout=1.0)

    handlers = {_DatabaseUnavailable: _unavailable, Overloaded: _shed}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = cfg
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle = Lifecycle()
    app.state.feed = feed = TradeFeed(cfg.dsn)
    metrics.watch_feed(feed)
    app.add_middleware(
        _Instrument, routes=routes, metrics=metrics, replica=cfg.replica, version=cfg.version, lifecycle=lifecycle
    )
    return app
