"""Market-data latency: a trade's acknowledgement -> its appearance on the feed, as a reader sees it.

The sampler is a market-data reader and a trader at once, on one clock:

- the reader holds the trading API's trade stream (``GET /marketdata/stream``, server-sent events,
  every symbol) open the whole drill, reconnecting when it breaks, and checks every symbol's
  sequence numbers: a number skipped is a *gap*, filled at once from the API's trade history
  (``/marketdata/{symbol}/trades?after_seq=N``, as an exchange's reader recovers); a skipped trade the
  history does not have either is *lost*; a number seen again is a *duplicate* (after a failover
  that lost trades, their numbers are given to new ones);
- the trader, every ``interval`` seconds, crosses the book on a symbol of its own (a sell of 1, then
  a buy of 1 at the same price: one trade) and notes when the buy's acknowledgement arrived.

A probe trade's latency is the moment the reader saw it (on the stream, or in a gap fill) minus
the moment its acknowledgement arrived; negative when the feed beat the HTTP answer. A probe trade
the reader never saw, ``unseen_after_s`` or more before the sampler stopped, is *unseen* (its
latency infinite in the percentiles: a feed that shows nothing must not look fast); younger ones
at the stop are left out and counted.

``samples/marketdata.parquet``: one row per probe trade (at its acknowledgement), per gap, per
duplicate, per unseen trade, per failed probe order, per reconnect of the reader and per change
of the feed's state the replica announced. ``analyze_marketdata`` gives per phase the latency
percentiles (nearest rank: never interpolated below a sample) and the counts.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from httpx_sse import SSEError, connect_sse

from drillbit.core.clock import Clock
from drillbit.core.measurements import MarketDataMeasurement, MarketDataPhase
from drillbit.core.redact import redact_url
from drillbit.core.rundir import MARKETDATA, MARKETDATA_SCHEMA
from drillbit.probes.definitions import MarketDataProbe
from drillbit.probes.samplers import ParquetSink, Sampler, SamplerDied, TickSampler, read_meta, read_samples

__all__ = ["DEFAULT_INTERVAL", "UNSEEN_AFTER_S", "MarketDataSampler", "analyze_marketdata"]

log = logging.getLogger(__name__)

#: a probe trade every this many seconds (two orders: a sell, then the buy that crosses it)
DEFAULT_INTERVAL = 0.25
#: a probe trade not seen this long after its acknowledgement, when the sampler stops, is unseen
UNSEEN_AFTER_S = 10.0
#: the stream sends a heartbeat after a second of silence: this long without a byte is a dead stream
STREAM_SILENCE_S = 3.0


class MarketDataSampler(Sampler):
    """Reads the trade stream and crosses the book every ``interval``; ``samples/marketdata.parquet``."""

    def __init__(self, api_url: str, run_dir: Path | str, run_id: str, *, clock: Clock,
                 probe: MarketDataProbe | None = None, orders_path: str = "/orders",
                 interval: float = DEFAULT_INTERVAL, timeout: float = 2.0,
                 unseen_after_s: float = UNSEEN_AFTER_S, stream_url: str | None = None) -> None:  # fmt: skip
        """``stream_url``: where the stream is read (default the API's ``stream_path``: a market-data gateway
        of its own, or one replica)."""
        if len(run_id) > 40:
            raise ValueError("run_id must be at most 40 characters (client order ids are at most 64)")
        self.api_url, self.run_id, self.clock = api_url.rstrip("/"), run_id, clock
        self.probe = probe or MarketDataProbe()
        self.orders_url = f"{self.api_url}{orders_path.rstrip('/')}"
        self.stream_url = stream_url or f"{self.api_url}{self.probe.stream_path}"
        self.interval, self.timeout, self.unseen_after_s = interval, timeout, unseen_after_s
        self.path = Path(run_dir) / MARKETDATA
        self.sink = ParquetSink(self.path, MARKETDATA_SCHEMA)
        super().__init__()
        self._ticks = TickSampler(self._trade, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="marketdata")  # fmt: skip
        self._client = httpx.Client(timeout=timeout)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # probe trade id -> its acknowledgement
        self._early: dict[int, tuple[float, int, str]] = {}  # probe trade id -> (seen, seq, via), before its ack
        self._last_seq: dict[str, int] = {}
        self._stop = threading.Event()
        self._live = threading.Event()  # the stream was once open on a live feed: the trader starts then
        self._reader = threading.Thread(target=self._read, name="marketdata-stream", daemon=True)
        self._reader_died: str | None = None
        self.counts = {"streams": 0, "events": 0, "trades_seen": 0, "left_pending": 0, "ticks_before_live": 0}

    # -- the trader ------------------------------------------------------------------------------
    def _row(self, **row: Any) -> None:
        self.sink.add({"t": row.pop("t", None) or self.clock.now(), "kind": row.pop("kind"), **row})

    def _trade(self, tick: float) -> None:
        if not self._live.is_set():  # a trade before the reader listens would be unseen through no fault of the feed
            self.counts["ticks_before_live"] += 1
            return
        n = next(self._ids)
        order = {"symbol": self.probe.symbol, "price": self.probe.price, "qty": 1}
        try:
            for side in ("sell", "buy"):
                answer = self._client.post(self.orders_url, json={**order, "side": side,
                                           "client_order_id": f"md-{self.run_id}-{n}{side[0]}"})  # fmt: skip
                acked = self.clock.now()
                if answer.status_code not in (200, 201):
                    self._row(kind="order_error", symbol=self.probe.symbol, detail=f"{side}: HTTP {answer.status_code}")
                    return
            fills = answer.json()["fills"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            self._row(kind="order_error", symbol=self.probe.symbol, detail=f"{type(err).__name__}: {err}"[:200])
            return
        for fill in fills:
            self._acked(int(fill["trade_id"]), acked)

    def _acked(self, trade_id: int, at: float) -> None:
        with self._lock:
            early = self._early.pop(trade_id, None)
            if early is None:
                self._pending[trade_id] = at
                return
        seen, seq, via = early
        self._row(t=at, kind="trade", symbol=self.probe.symbol, seq=seq, trade_id=trade_id, latency_s=seen - at,
                  via=via)  # fmt: skip

    def _seen(self, trade: dict[str, Any], at: float, via: str) -> None:
        """The reader saw a trade of the probe's symbol."""
        trade_id, seq = int(trade["trade_id"]), int(trade["seq"])
        with self._lock:
            acked = self._pending.pop(trade_id, None)
            if acked is None:
                self._early[trade_id] = (at, seq, via)
                return
        self._row(t=acked, kind="trade", symbol=self.probe.symbol, seq=seq, trade_id=trade_id, latency_s=at - acked,
                  via=via)  # fmt: skip

    # -- the reader ------------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                reason = self._stream()
                if self._stop.is_set():
                    return
                self._row(kind="reconnect", detail=reason[:200])
                self._stop.wait(0.1)
        except Exception as err:  # recorded and raised by stop(): a dead reader is never silence
            self._reader_died = f"{type(err).__name__}: {err}"
            log.exception("market-data reader died; the stream is unread from here")

    def _stream(self) -> str:
        """Read the stream until it breaks or the sampler stops; why it ended."""
        timeout = httpx.Timeout(self.timeout, read=STREAM_SILENCE_S)
        try:
            with httpx.Client(timeout=timeout) as client, connect_sse(client, "GET", self.stream_url) as source:
                if source.response.status_code != 200:
                    return f"HTTP {source.response.status_code}"
                self.counts["streams"] += 1
                for event in source.iter_sse():
                    if self._stop.is_set():
                        return "stopped"
                    self._on_event(event.event, event.data, self.clock.now())
            return "the stream ended"
        except (httpx.HTTPError, SSEError) as err:
            return f"{type(err).__name__}: {err}"

    def _on_event(self, kind: str, data: str, at: float) -> None:
        self.counts["events"] += 1
        if kind == "trade":
            self._on_trade(_json_object(data), at)
        elif kind in ("hello", "feed") and _json_object(data).get("feed") == "live":
            self._live.set()
        if kind in ("feed", "overflow"):
            self._row(t=at, kind="feed", detail=f"{kind}: {data}"[:200])

    def _on_trade(self, trade: dict[str, Any], at: float) -> None:
        symbol, seq = str(trade["symbol"]), int(trade["seq"])
        self.counts["trades_seen"] += 1
        last = self._last_seq.get(symbol)
        self._last_seq[symbol] = seq if last is None else max(last, seq)
        if last is not None and seq <= last:
            self._row(t=at, kind="duplicate", symbol=symbol, seq=seq, trade_id=int(trade["trade_id"]), count=1,
                      detail=f"after seq {last}")  # fmt: skip
        elif last is not None and seq > last + 1:
            self._fill(symbol, last, seq, at)
        if symbol == self.probe.symbol:
            self._seen(trade, at, "stream")

    def _fill(self, symbol: str, last: int, seq: int, at: float) -> None:
        """Trades last+1 .. seq-1 never came on the stream: fetch them from the history."""
        missing = seq - last - 1
        url = f"{self.api_url}{self.probe.trades_path.format(symbol=symbol)}"
        found: list[dict[str, Any]] | None = None
        detail = None
        try:
            answer = self._client.get(url, params={"after_seq": last, "limit": min(missing, 1000)})
            if answer.status_code == 200:
                found = [t for t in answer.json()["trades"] if last < int(t["seq"]) < seq]
            else:
                detail = f"gap fill: HTTP {answer.status_code}"
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            detail = f"gap fill: {type(err).__name__}: {err}"[:200]
        filled = self.clock.now()
        self._row(t=at, kind="gap", symbol=symbol, seq=seq, count=missing,
                  recovered=None if found is None else len(found), detail=detail)  # fmt: skip
        for trade in found or []:
            if symbol == self.probe.symbol:
                self._seen(trade, filled, "recovery")

    # -- lifecycle -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self._reader.start()

    def _release(self) -> None:
        self._stop.set()
        self._reader.join(STREAM_SILENCE_S + self.timeout + 1)
        now = self.clock.now()
        with self._lock:
            pending, self._pending = self._pending, {}
        for trade_id, acked in pending.items():
            if now - acked >= self.unseen_after_s:
                self._row(t=acked, kind="unseen", symbol=self.probe.symbol, trade_id=trade_id, count=1,
                          detail=f"not seen in {now - acked:.1f} s")  # fmt: skip
            else:
                self.counts["left_pending"] += 1
        self._client.close()

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "marketdata", "interval_s": self.interval, "timeout_s": self.timeout,
                "unseen_after_s": self.unseen_after_s, "symbol": self.probe.symbol,
                "stream": redact_url(self.stream_url), **self.counts, **self._ticks.stats(),
                "reader_died": self._reader_died}  # fmt: skip

    @property
    def died(self) -> str | None:
        return self._ticks.died or self._reader_died

    def stop(self) -> None:
        super().stop()
        if self._reader_died is not None:
            raise SamplerDied(f"market-data reader: {self._reader_died}")


def _json_object(data: str) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"a trade event is not a JSON object: {data[:80]!r}")
    return value


# -- analysis ------------------------------------------------------------------------------------


def _percentile_ms(latencies: list[float], p: float) -> float | None:
    """Nearest rank, in ms; None when there is no latency, or the rank falls on an unseen trade."""
    if not latencies:
        return None
    value = float(np.percentile(np.asarray(latencies), p, method="inverted_cdf"))
    return value * 1000 if math.isfinite(value) else None


def _phase(rows: list[dict[str, Any]]) -> MarketDataPhase:
    trades = [r for r in rows if r["kind"] == "trade"]
    unseen = sum(1 for r in rows if r["kind"] == "unseen")
    latencies = [float(r["latency_s"]) for r in trades] + [math.inf] * unseen
    gaps = [r for r in rows if r["kind"] == "gap"]
    skipped = sum(int(r["count"] or 0) for r in gaps)
    filled = [r for r in gaps if r["recovered"] is not None]
    recovered = sum(int(r["recovered"]) for r in filled)
    return MarketDataPhase(
        trades=len(trades), unseen=unseen, recovered_trades=sum(1 for r in trades if r["via"] == "recovery"),
        p50_ms=_percentile_ms(latencies, 50), p95_ms=_percentile_ms(latencies, 95),
        p99_ms=_percentile_ms(latencies, 99), max_ms=_percentile_ms(latencies, 100),
        gaps=len(gaps), gap_trades=skipped, gap_trades_recovered=recovered,
        lost=sum(int(r["count"]) - int(r["recovered"]) for r in filled) + unseen,
        unfilled_gaps=len(gaps) - len(filled), duplicates=sum(1 for r in rows if r["kind"] == "duplicate"),
        order_errors=sum(1 for r in rows if r["kind"] == "order_error"),
        reconnects=sum(1 for r in rows if r["kind"] == "reconnect"),
        feed_changes=sum(1 for r in rows if r["kind"] == "feed"),
    )  # fmt: skip


def analyze_marketdata(run_dir: Path | str, *, phases: dict[str, tuple[float, float]]) -> MarketDataMeasurement:
    """The market-data samples of a run, per phase (a probe trade by its acknowledgement) and over
    the whole run (``all``). Raises FileNotFoundError when the drill sampled no market data."""
    path = Path(run_dir) / MARKETDATA
    rows = sorted(read_samples(path, MARKETDATA_SCHEMA).to_pylist(), key=lambda r: r["t"])
    by_phase: dict[str, list[dict[str, Any]]] = {name: [] for name in phases}
    for r in rows:
        for name, (lo, hi) in phases.items():
            if lo <= r["t"] < hi:
                by_phase[name].append(r)
                break
    meta = read_meta(path)
    return MarketDataMeasurement(
        interval_s=float(meta.get("interval_s") or DEFAULT_INTERVAL), symbol=str(meta.get("symbol") or ""),
        unseen_after_s=float(meta.get("unseen_after_s") or UNSEEN_AFTER_S),
        streams=int(meta.get("streams") or 0), trades_seen=int(meta.get("trades_seen") or 0),
        left_pending=int(meta.get("left_pending") or 0), reader_died=meta.get("reader_died"),
        phases={**{name: _phase(group) for name, group in by_phase.items() if group}, "all": _phase(rows)},
    )  # fmt: skip
