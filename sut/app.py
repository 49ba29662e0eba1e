"""The trading API (ASGI, Starlette). All state lives in PostgreSQL: any replica serves any request.

Database trouble never hangs a request: the pool hands out a connection within
``getconn_timeout`` or the request gets 503, each request's database work has a deadline, and
a connection that landed on a demoted (read-only) primary is closed so the pool reconnects
through the multi-host DSN to the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sut import matching

__all__ = ["DEFAULT_VERSION", "Lifecycle", "Settings", "create_app", "wait_ready"]

log = logging.getLogger(__name__)

_SYMBOL_PATTERN = r"^[A-Z0-9.\-]{1,16}$"
#: the version a replica reports when neither the server nor $DRILL_APP_VERSION names one
DEFAULT_VERSION = "v1"


#: connections a replica opens before it serves (the pool grows to pool_size on demand)
WARM_CONNECTIONS = 2


@dataclass(frozen=True)
class Settings:
    dsn: str
    replica: str
    pool_size: int = 8
    getconn_timeout: float = 0.5
    request_timeout: float = 2.0
    version: str = DEFAULT_VERSION  # the deployed code version: x-drill-version header and /healthz

    @classmethod
    def from_env(cls, dsn: str | None = None, replica: str | None = None, **overrides: Any) -> Settings:
        env = os.environ
        values: dict[str, Any] = {
            "dsn": dsn or env.get("DRILL_SUT_DSN", ""),
            "replica": replica or env.get("DRILL_REPLICA") or f"{socket.gethostname()}/{os.getpid()}",
        }
        if "DRILL_SUT_POOL_SIZE" in env:
            values["pool_size"] = int(env["DRILL_SUT_POOL_SIZE"])
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


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


class _DatabaseUnavailable(Exception):
    pass


@contextlib.asynccontextmanager
async def _db(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection, with the request's deadline; database failures become 503."""
    settings: Settings = request.app.state.settings
    pool: AsyncConnectionPool = request.app.state.pool
    metrics: Metrics = request.app.state.metrics
    try:
        async with asyncio.timeout(settings.request_timeout), pool.connection(timeout=settings.getconn_timeout) as conn:
            try:
                yield conn
            except psycopg.errors.ReadOnlySqlTransaction:
                await conn.close()  # landed on a demoted primary: make the pool reconnect
                raise
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.OperationalError, PoolTimeout, TimeoutError) as err:
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
        async with _db(request) as conn:
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


async def _on_order(request: Request, op: Callable[[Any, int], Awaitable[dict[str, Any]]]) -> Response:
    order_id = _order_id(request)
    if order_id is None:
        return _error(422, "order id must be a positive integer", "id")
    try:
        async with _db(request) as conn:
            return JSONResponse(await op(conn, order_id))
    except matching.NotFound:
        return _error(404, "order not found", "id")
    except matching.Conflict as err:
        return _error(409, str(err), "id")


async def get_order(request: Request) -> Response:
    return await _on_order(request, matching.get_order)


async def cancel_order(request: Request) -> Response:
    return await _on_order(request, matching.cancel)


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
        return _error(503, "database is read-only")
    return JSONResponse({"status": "ready"})


async def wait_ready(app: Starlette, timeout: float, interval: float = 0.1) -> bool:
    """Poll what /readyz checks (a pooled connection to a writable primary) until it holds or
    ``timeout`` passes; True when ready. The server calls it after start-up, before it takes
    connections from a shared front door, so a new replica's first requests find a warm pool."""
    settings: Settings = app.state.settings
    pool: AsyncConnectionPool = app.state.pool
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with (
                asyncio.timeout(settings.request_timeout),
                pool.connection(timeout=settings.getconn_timeout) as conn,
            ):
                if await _writable(conn):
                    return True
        except (psycopg.Error, PoolTimeout, TimeoutError) as err:
            log.info("not ready yet: %s: %s", type(err).__name__, err)
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


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

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
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
            self.metrics.latency.labels(self._template(scope), scope["method"], f"{status[0] // 100}xx").observe(
                time.perf_counter() - start
            )


async def _unavailable(request: Request, exc: Exception) -> Response:
    return _error(503, "database unavailable")


def create_app(dsn: str | None = None, *, replica: str | None = None, **settings: Any) -> Starlette:
    """Build the app. ``dsn`` defaults to $DRILL_SUT_DSN; ``settings`` override Settings fields."""
    cfg = Settings.from_env(dsn, replica, **settings)
    metrics = Metrics()
    routes = [
        Route("/orders", place_order, methods=["POST"]),
        Route("/orders/{order_id}", get_order, methods=["GET"]),
        Route("/orders/{order_id}", cancel_order, methods=["DELETE"]),
        Route("/book/{symbol}", get_book, methods=["GET"]),
        Route("/marketdata/{symbol}", get_market_data, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # reconnect_timeout=0: a failed reconnect gives up at once instead of backing off 1, 2, 4...
        # seconds; the next request grows the pool again, so the app follows a failover promptly.
        # a replica joins the front door with connections already open (under load, opening them on
        # the request path costs more than the 0.5 s pool wait: a 503)
        pool = AsyncConnectionPool(
            cfg.dsn,
            min_size=min(WARM_CONNECTIONS, cfg.pool_size),
            max_size=cfg.pool_size,
            open=False,
            reconnect_timeout=0,
            name=f"sut-{cfg.replica}",
        )
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close(timeout=1.0)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_DatabaseUnavailable: _unavailable})
    app.state.settings = cfg
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle = Lifecycle()
    app.add_middleware(
        _Instrument, routes=routes, metrics=metrics, replica=cfg.replica, version=cfg.version, lifecycle=lifecycle
    )
    return app
