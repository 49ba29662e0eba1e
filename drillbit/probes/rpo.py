"""Heartbeat writer (the RPO sampler) and the RPO analyzer.

The writer sends a monotonic sequence every ``interval`` (100 ms by default), one write at a time
(a write that overruns its tick makes the writer skip ticks, never queue them), either

- straight into the database: one autocommit INSERT into ``drill_heartbeat`` per write, over the
  target's DSN (a libpq multi-host DSN with ``target_session_attrs=read-write`` follows a
  failover: after any error the connection is dropped and the next write reconnects); every
  connection has ``connect_timeout`` and ``statement_timeout`` = ``timeout``, and a client-side
  deadline (``timeout`` + a grace) shuts the socket of a write a dead server never answers; or
- through the trading API: ``POST /orders`` with client order id ``hb-<run>-<seq>`` (a tiny
  resting buy on its own symbol); the database DSN is then used only for the read-back.

Each write is recorded (``samples/heartbeat.parquet``) as what the client learned:

- ``acked``: the commit was acknowledged (its time is recorded);
- ``failed``: the write was refused or answered with an error: never sent (connect failed), or
  the server answered an error (it may still have been committed!);
- ``indeterminate``: the client never learned the outcome: a timeout (client deadline or
  ``statement_timeout``: the cancel can race the commit), or the connection was lost or the
  server shut down mid-statement.

``readback()`` (after recovery) records which sequence numbers survived, and how many times, in
``samples/heartbeat_readback.parquet``.

RPO (ARCHITECTURE.md): writes acknowledged to a client but absent after recovery. The analyzer
keeps apart *lost* (acked, absent: the RPO count), *indeterminate* (present or absent: never
lost), *unexpectedly present* (failed, yet written) and *duplicates* (a seq present more than
once: the table has no unique key on purpose, so a write applied twice is visible; through the
API the unique client order id makes duplicates impossible). The count of lost writes is what
"no acknowledged order lost" judges. The window is the fault time minus the acknowledgement time
of the oldest lost write acknowledged before the fault: never negative (0 when none was). A write
acknowledged after the fault and then lost is a split-brain symptom (e.g. an isolated old primary
still acknowledging): counted in ``lost`` and reported apart (``split_brain``, ``lost_after_fault``).

Table: ``drill_heartbeat (run_id, seq, sent_at, written_at default clock_timestamp())``. Unlike a
``seq`` primary key, ``run_id`` lets drills share a database and keeps duplicates observable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from drillbit.core.clock import Clock
from drillbit.core.events import fault_time
from drillbit.core.measurements import RpoMeasurement
from drillbit.core.rundir import HEARTBEAT, HEARTBEAT_READBACK, HEARTBEAT_READBACK_SCHEMA, HEARTBEAT_SCHEMA
from drillbit.probes.samplers import ParquetSink, Sampler, TickSampler, read_meta, read_samples

__all__ = [
    "HeartbeatWriter",
    "RpoResult",
    "analyze_rpo",
    "heartbeat_meta",
    "heartbeat_order_id",
    "load_heartbeats",
    "lost_writes",
    "rpo_report",
    "rpo_seconds",
]

log = logging.getLogger(__name__)

#: after a statement_timeout, the client waits this much longer for the server's answer before severing
DEADLINE_GRACE = 0.5
#: SQLSTATE classes meaning the connection or the server went away mid-statement: outcome unknown
_UNKNOWN_OUTCOME_CLASSES = ("08", "57")  # connection exception; operator intervention (shutdown, cancel)


class HeartbeatWriter(Sampler):
    """One writer thread, one connection (or HTTP client); every write bounded in time."""

    def __init__(
        self,
        dsn: str,
        run_dir: Path | str,
        run_id: str,
        *,
        clock: Clock,
        interval: float = 0.1,
        timeout: float = 1.0,
        api_url: str | None = None,
        table: str = "drill_heartbeat",
    ) -> None:
        if api_url is not None and len(run_id) > 40:
            raise ValueError("run_id must be at most 40 characters through the API (client order ids <= 64)")
        self.dsn, self.run_id, self.timeout, self.clock, self.interval = dsn, run_id, timeout, clock, interval
        self.api_url, self.table = api_url, table
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / HEARTBEAT
        self.sink = ParquetSink(self.path, HEARTBEAT_SCHEMA)
        self._conn: psycopg.Connection[Any] | None = None
        self._http: httpx.Client | None = None
        self._seq = 0
        super().__init__()
        self._ticks = TickSampler(self._write, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="heartbeat")  # fmt: skip

    # -- database channel ------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        # libpq's connect_timeout is whole seconds, at least 2 (per host of a multi-host DSN)
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(2, math.ceil(self.timeout)))
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.timeout * 1000)}ms",))
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def prepare(self) -> None:
        """Create the heartbeat table if missing (database channel); check an existing one fits."""
        if self.api_url is not None:
            return
        ident = sql.Identifier(self.table)
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, seq bigint NOT NULL, "
                "sent_at timestamptz NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ).format(ident))  # fmt: skip
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (run_id, seq)").format(
                sql.Identifier(f"{self.table}_run_seq"), ident))  # fmt: skip
            cols = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (self.table,))}  # fmt: skip
        if not {"run_id", "seq", "sent_at"} <= cols:
            raise RuntimeError(f"an existing table {self.table!r} has other columns ({sorted(cols)}): use table=...")

    def _write_db(self, seq: int, sent: float) -> tuple[str, str | None]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._connect()
            except psycopg.Error as err:
                log.debug("heartbeat connect failed: %s", err)
                return "failed", "connect"  # never sent: certainly not written
        conn = self._conn
        severed = threading.Event()
        watchdog = threading.Timer(self.timeout + DEADLINE_GRACE, _sever, args=(conn, severed))
        watchdog.start()
        try:
            conn.execute(
                sql.SQL("INSERT INTO {} (run_id, seq, sent_at) VALUES (%s, %s, to_timestamp(%s))").format(
                    sql.Identifier(self.table)
                ),
                (self.run_id, seq, sent),
            )
            outcome, error = "acked", None
        except psycopg.errors.QueryCanceled:
            outcome, error = "indeterminate", "statement_timeout"
        except psycopg.Error as err:
            state = err.sqlstate
            if severed.is_set():
                outcome, error = "indeterminate", "timeout"
            elif state is None or state.startswith(_UNKNOWN_OUTCOME_CLASSES):
                outcome, error = "indeterminate", "connection"
            else:
                outcome, error = "failed", type(err).__name__
        finally:
            watchdog.cancel()
        if outcome != "acked" or severed.is_set():
            self._drop_connection()  # reconnect through the multi-host DSN on the next write
        return outcome, error

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self._conn.close()
            self._conn = None

    # -- trading API channel ---------------------------------------------------------------
    def _write_api(self, seq: int, sent: float) -> tuple[str, str | None]:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
        order = {"symbol": _api_symbol(self.run_id), "side": "buy", "price": "0.00000001", "qty": 1,
                 "client_order_id": heartbeat_order_id(self.run_id, seq)}  # fmt: skip
        try:
            r = self._http.post(f"{self.api_url}/orders", json=order)
        except httpx.ConnectError:
            return "failed", "connect"  # never sent
        except httpx.TimeoutException:
            return "indeterminate", "timeout"
        except httpx.TransportError:
            return "indeterminate", "connection"
        if r.status_code in (200, 201):
            return "acked", None
        return "failed", f"http {r.status_code}"

    # -- the writer --------------------------------------------------------------------------
    def _write(self, tick: float) -> None:
        self._seq += 1
        seq, sent = self._seq, self.clock.now()
        if self.api_url is None:
            outcome, error = self._write_db(seq, sent)
        else:
            outcome, error = self._write_api(seq, sent)
        acked = self.clock.now() if outcome == "acked" else math.nan
        self.sink.add({"seq": seq, "sent": sent, "acked": acked, "outcome": outcome, "error": error})

    def max_write_s(self) -> float:
        """The longest one write may take (connect to every host of the DSN, the statement, the
        client deadline): the next write waits for it, so a gap this long is not a hole."""
        if self.api_url is not None:
            return 4 * self.timeout  # httpx: connect, write, read and pool timeouts each
        hosts = str(conninfo_to_dict(self.dsn).get("host") or "").count(",") + 1
        return hosts * max(2, math.ceil(self.timeout)) + self.timeout + DEADLINE_GRACE

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "heartbeat", "channel": "database" if self.api_url is None else "trading-api",
                "run_id": self.run_id, "table": self.table, "interval_s": self.interval, "timeout_s": self.timeout,
                "max_write_s": self.max_write_s(), **self._ticks.stats()}  # fmt: skip

    def _prepare(self) -> None:
        self.prepare()

    def _release(self) -> None:
        self._drop_connection()
        if self._http is not None:
            self._http.close()

    def _final_meta(self) -> dict[str, Any]:
        return {**self._meta(), "writes": self.sink.written}

    def readback(self, retry_for: float = 30.0) -> pd.DataFrame:
        """Which sequence numbers survived, and how often (call after recovery); writes HEARTBEAT_READBACK.

        Retries while the database is unreachable, for up to ``retry_for`` seconds.
        """
        deadline = time.monotonic() + retry_for
        while True:
            try:
                rows = self._read_survivors()
                break
            except psycopg.OperationalError as err:
                if time.monotonic() >= deadline:
                    raise
                log.info("heartbeat read-back: database not reachable yet (%s); retrying", err)
                time.sleep(0.5)
        table = pa.Table.from_pylist([{"seq": s, "count": c} for s, c in rows], schema=HEARTBEAT_READBACK_SCHEMA)
        path = self.run_dir / HEARTBEAT_READBACK
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return table.to_pandas()

    def _read_survivors(self) -> list[tuple[int, int]]:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            if self.api_url is None:
                query = sql.SQL("SELECT seq, count(*)::int FROM {} WHERE run_id = %s GROUP BY seq ORDER BY seq")
                cur = conn.execute(query.format(sql.Identifier(self.table)), (self.run_id,))
            else:
                prefix = f"hb-{self.run_id}-"
                cur = conn.execute(
                    "SELECT substr(client_order_id, %s)::bigint AS seq, count(*)::int FROM orders "
                    "WHERE starts_with(client_order_id, %s) GROUP BY 1 ORDER BY 1",
                    (len(prefix) + 1, prefix),
                )
            return [(int(s), int(c)) for s, c in cur.fetchall()]


def heartbeat_order_id(run_id: str, seq: int) -> str:
    """The client order id of heartbeat ``seq`` through the trading API (read back by its prefix)."""
    return f"hb-{run_id}-{seq}"


def _api_symbol(run_id: str) -> str:
    """A symbol of the run's own (1-16 of A-Z 0-9 . -), so heartbeat orders never meet real flow."""
    return "HB-" + hashlib.sha256(run_id.encode()).hexdigest()[:10].upper()


def _sever(conn: psycopg.Connection[Any], severed: threading.Event) -> None:
    """The client deadline passed: shut the socket so the blocked write returns (indeterminate)."""
    severed.set()
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class RpoResult(RpoMeasurement):
    """What :func:`analyze_rpo` finds: the fields of measurements.json's ``rpo`` section (the model
    is defined once, in ``drillbit.core.measurements``), its ``coverage`` left to the analysis.

    ``lost``: acknowledged, absent after recovery (the RPO count); ``lost_after_fault``: of those,
    the ones acknowledged after the fault time, a split-brain symptom (``split_brain``);
    ``window_s``: fault time - ack time of the oldest lost write acknowledged before it (>= 0);
    ``unexpectedly_present``: refused or answered an error, yet the write survived."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def load_heartbeats(run_dir: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = Path(run_dir)
    if not (d / HEARTBEAT_READBACK).exists():
        raise FileNotFoundError(f"no {HEARTBEAT_READBACK} in {d}: the heartbeat was not read back after recovery")
    heartbeats = read_samples(d / HEARTBEAT, HEARTBEAT_SCHEMA).to_pandas()
    return heartbeats, read_samples(d / HEARTBEAT_READBACK, HEARTBEAT_READBACK_SCHEMA).to_pandas()


def heartbeat_meta(run_dir: Path | str) -> dict[str, Any]:
    return read_meta(Path(run_dir) / HEARTBEAT)


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.sort(np.asarray(values, dtype=np.int64))]


def _copies(seq: np.ndarray, back_seq: np.ndarray, back_count: np.ndarray) -> np.ndarray:
    """How many times each of ``seq`` appears in the read-back (0: absent)."""
    if back_seq.size == 0:
        return np.zeros(seq.size, dtype=np.int64)
    order = np.argsort(back_seq)
    sorted_seq, sorted_count = back_seq[order], back_count[order]
    pos = np.minimum(np.searchsorted(sorted_seq, seq), sorted_seq.size - 1)
    return np.where(sorted_seq[pos] == seq, sorted_count[pos], 0)


def analyze_rpo(heartbeats: pd.DataFrame, readback: pd.DataFrame, fault_at: float) -> RpoResult:
    """Lost, indeterminate, unexpectedly present and duplicated writes (see the module docstring).

    Raises ValueError when nothing was acknowledged before the fault (nothing to lose: no measure).
    """
    outcome = heartbeats["outcome"].astype(object).to_numpy()
    seq = heartbeats["seq"].to_numpy(dtype=np.int64)
    acked_at = heartbeats["acked"].to_numpy(dtype=float)
    back_seq = readback["seq"].to_numpy(dtype=np.int64)
    back_count = readback["count"].to_numpy(dtype=np.int64)
    is_acked = outcome == "acked"
    with np.errstate(invalid="ignore"):
        acked_before = int((is_acked & (acked_at <= fault_at)).sum())
    if acked_before == 0:
        raise ValueError("no heartbeat was acknowledged before the fault: RPO cannot be measured")
    present = _copies(seq, back_seq, back_count) > 0
    lost = is_acked & ~present
    indet = outcome == "indeterminate"
    failed = outcome == "failed"
    lost_acks = acked_at[lost]
    return RpoResult(
        fault_at=fault_at,
        writes=int(seq.size),
        acked=int(is_acked.sum()),
        acked_before_fault=acked_before,
        lost=int(lost.sum()),
        lost_seqs=_ints(seq[lost]),
        lost_after_fault=int((lost_acks > fault_at).sum()),
        split_brain=bool((lost_acks > fault_at).any()),
        window_s=max(0.0, float(fault_at - lost_acks.min())) if lost_acks.size else 0.0,
        lost_span_s=float(lost_acks.max() - lost_acks.min()) if lost_acks.size else 0.0,
        indeterminate=int(indet.sum()),
        indeterminate_present=int((indet & present).sum()),
        indeterminate_absent=int((indet & ~present).sum()),
        indeterminate_present_seqs=_ints(seq[indet & present]),
        indeterminate_absent_seqs=_ints(seq[indet & ~present]),
        failed=int(failed.sum()),
        unexpectedly_present=_ints(seq[failed & present]),
        duplicates=_ints(back_seq[back_count > 1]),
        unknown_present=_ints(np.setdiff1d(back_seq, seq)),
        method="heartbeat writes read back after recovery; lost = acknowledged and absent; "
        "indeterminate (no outcome learned) reported apart, never lost",
    )


def rpo_report(run_dir: str, fault_at: float | None = None) -> dict[str, Any]:
    """Chaos Toolkit probe: every RPO figure (lost, window, indeterminate, unexpectedly present, duplicates).

    ``fault_at`` defaults to the first ``fault.inject`` event; raises when it cannot measure.
    """
    d = Path(run_dir)
    return analyze_rpo(*load_heartbeats(d), fault_time(d, fault_at)).to_dict()


def lost_writes(run_dir: str, fault_at: float | None = None) -> int:
    """Chaos Toolkit probe: the number of acknowledged writes lost. Raises if it cannot measure."""
    d = Path(run_dir)
    return analyze_rpo(*load_heartbeats(d), fault_time(d, fault_at)).lost


def rpo_seconds(run_dir: str, fault_at: float | None = None) -> float:
    """Chaos Toolkit probe: the RPO window in seconds (0 when no acknowledged write was lost)."""
    d = Path(run_dir)
    return analyze_rpo(*load_heartbeats(d), fault_time(d, fault_at)).window_s
