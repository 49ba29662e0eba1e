"""Heartbeat writer (RPO sampler) and the RPO analyzer.

The writer inserts a monotonic sequence into ``drill_heartbeat`` every ``interval`` (100 ms by
default), one autocommit INSERT each, over the target's database DSN (a libpq multi-host DSN
follows a failover), and records what the client learned of each write:

- ``acked``: the commit was acknowledged (time recorded);
- ``failed``: the server answered an error (not acknowledged; it may still have been written);
- ``indeterminate``: no answer (connection lost mid-commit, client deadline passed): the client
  never learned the outcome.

After recovery ``readback()`` records which sequence numbers survived, and how many times.

RPO (ARCHITECTURE.md): writes acknowledged to a client but absent after recovery. The analyzer
keeps apart lost (acked, absent), indeterminate (present or absent: never counted as lost),
unexpectedly present (failed, yet written) and duplicates; the window is the fault time minus
the acknowledgement time of the oldest lost write.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.clock import Clock
from drillbit.events import fault_time
from drillbit.rundir import HEARTBEAT, HEARTBEAT_READBACK, HEARTBEAT_READBACK_SCHEMA, HEARTBEAT_SCHEMA
from probes.samplers import ParquetSink, TickSampler

__all__ = ["HeartbeatWriter", "RpoResult", "analyze_rpo", "load_heartbeats", "lost_writes", "rpo_seconds"]

log = logging.getLogger(__name__)

DDL = """CREATE TABLE IF NOT EXISTS drill_heartbeat (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    sent_at timestamptz NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
# no primary key on purpose: a duplicate (a write applied twice) must be observable, not rejected
INDEX = "CREATE INDEX IF NOT EXISTS drill_heartbeat_run_seq ON drill_heartbeat (run_id, seq)"


class HeartbeatWriter:
    """One writer thread, one connection; every write bounded by a client-side deadline."""

    def __init__(
        self,
        dsn: str,
        run_dir: Path,
        run_id: str,
        *,
        clock: Clock,
        interval: float = 0.1,
        timeout: float = 1.0,
    ) -> None:
        self.dsn, self.run_id, self.timeout, self.clock = dsn, run_id, timeout, clock
        self.run_dir = Path(run_dir)
        self.sink = ParquetSink(self.run_dir / HEARTBEAT, HEARTBEAT_SCHEMA)
        self._conn: psycopg.Connection[Any] | None = None
        self._seq = 0
        # one write at a time, in sequence order: max_in_flight=1 and the tick loop skips missed ticks
        self._ticks = TickSampler(
            self._write, clock=clock, interval=interval, max_in_flight=1, on_flush=self.sink.flush, name="heartbeat"
        )

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(2, math.ceil(self.timeout)),
            # server-side backstop beyond the client deadline, so an abandoned backend does not wait forever
            options=f"-c statement_timeout={int(self.timeout * 2000)}",
        )
        return conn

    def prepare(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(DDL)
            conn.execute(INDEX)

    def _write(self, sent: float) -> None:
        self._seq += 1
        seq = self._seq
        outcome, error, acked = "acked", None, math.nan
        watchdog: threading.Timer | None = None
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            watchdog = threading.Timer(self.timeout, _sever, args=(self._conn,))
            watchdog.start()
            self._conn.execute(
                "INSERT INTO drill_heartbeat (run_id, seq, sent_at) VALUES (%s, %s, to_timestamp(%s))",
                (self.run_id, seq, sent),
            )
            acked = self.clock.now()
        except psycopg.Error as err:
            # a server-side error carries a SQLSTATE: the server answered. Without one, the connection
            # was lost or severed by the deadline: the outcome is unknown.
            answered = getattr(err, "sqlstate", None) is not None
            outcome = "failed" if answered else "indeterminate"
            error = type(err).__name__
            if not answered and self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
                self._conn = None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        self.sink.add({"seq": seq, "sent": sent, "acked": acked, "outcome": outcome, "error": error})

    def start(self) -> HeartbeatWriter:
        self.prepare()
        self._ticks.start()
        return self

    def stop(self) -> None:
        self._ticks.stop()
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self.sink.close()

    def readback(self, timeout: float = 30.0) -> pd.DataFrame:
        """Which sequence numbers survived (call after recovery); written to HEARTBEAT_READBACK."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(2, int(timeout))) as conn:
            rows = conn.execute(
                "SELECT seq, count(*)::int FROM drill_heartbeat WHERE run_id = %s GROUP BY seq ORDER BY seq",
                (self.run_id,),
            ).fetchall()
        table = pa.Table.from_pylist([{"seq": s, "count": c} for s, c in rows], schema=HEARTBEAT_READBACK_SCHEMA)
        pq.write_table(table, self.run_dir / HEARTBEAT_READBACK)
        return table.to_pandas()

    def __enter__(self) -> HeartbeatWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sever(conn: psycopg.Connection[Any]) -> None:
    """The client deadline passed: shut the socket so the blocked write returns (indeterminate)."""
    with contextlib.suppress(OSError, psycopg.Error):
        socket.socket(fileno=os.dup(conn.pgconn.socket)).shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class RpoResult:
    fault_at: float
    writes: int
    acked: int
    lost: int  # acknowledged, absent after recovery: the RPO count
    lost_seqs: list[int]
    window_s: float  # fault time - ack time of the oldest lost write (0 when nothing was lost)
    lost_span_s: float  # ack time of the newest lost write - of the oldest
    indeterminate: int
    indeterminate_present: int
    indeterminate_absent: int
    failed: int
    unexpectedly_present: list[int]  # the server answered an error, yet the write survived
    duplicates: list[int]  # present more than once
    unknown_present: list[int]  # present but never sent by this writer (another run?)
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_heartbeats(run_dir: Path | str) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = Path(run_dir)
    for name in (HEARTBEAT, HEARTBEAT_READBACK):
        if not (d / name).exists():
            raise FileNotFoundError(f"no {name} in {d}: the heartbeat did not run or was not read back")
    return pq.read_table(d / HEARTBEAT).to_pandas(), pq.read_table(d / HEARTBEAT_READBACK).to_pandas()


def analyze_rpo(heartbeats: pd.DataFrame, readback: pd.DataFrame, fault_at: float) -> RpoResult:
    """Lost, indeterminate, unexpectedly present and duplicated writes (see the module docstring)."""
    present = readback.set_index("seq")["count"]
    hb = heartbeats.assign(
        outcome=heartbeats["outcome"].astype(str),
        copies=heartbeats["seq"].map(present).fillna(0).astype(int),
    )
    acked = hb[hb["outcome"] == "acked"]
    lost = acked[acked["copies"] == 0].sort_values("seq")
    indet = hb[hb["outcome"] == "indeterminate"]
    failed = hb[hb["outcome"] == "failed"]
    window = float(fault_at - lost["acked"].min()) if len(lost) else 0.0
    span = float(lost["acked"].max() - lost["acked"].min()) if len(lost) else 0.0
    unknown = sorted(set(present.index) - set(hb["seq"]))
    return RpoResult(
        fault_at=fault_at,
        writes=len(hb),
        acked=len(acked),
        lost=len(lost),
        lost_seqs=[int(s) for s in lost["seq"]],
        window_s=window,
        lost_span_s=span,
        indeterminate=len(indet),
        indeterminate_present=int((indet["copies"] > 0).sum()),
        indeterminate_absent=int((indet["copies"] == 0).sum()),
        failed=len(failed),
        unexpectedly_present=[int(s) for s in failed.loc[failed["copies"] > 0, "seq"]],
        duplicates=[int(s) for s in present.index[np.asarray(present > 1)]],
        unknown_present=[int(s) for s in unknown],
        method="heartbeat writes read back after recovery; lost = acknowledged and absent",
    )


def lost_writes(run_dir: str, fault_at: float | None = None) -> int:
    """Chaos Toolkit probe: the number of acknowledged writes lost. Raises if it cannot measure."""
    d = Path(run_dir)
    return analyze_rpo(*load_heartbeats(d), fault_time(d, fault_at)).lost


def rpo_seconds(run_dir: str, fault_at: float | None = None) -> float:
    """Chaos Toolkit probe: the RPO window in seconds (0 when no acknowledged write was lost)."""
    d = Path(run_dir)
    return analyze_rpo(*load_heartbeats(d), fault_time(d, fault_at)).window_s
