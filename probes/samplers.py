"""The sampler machinery: fixed ticks on the drill clock, concurrent probes, a Parquet file per sampler.

A sampler sends one probe per tick (``t0 + i * interval``) whatever the previous probes are doing:
probes run on a small thread pool, so a probe hanging until its timeout does not delay the next
one (a stall must be observed, not waited out). Ticks that pass while the machine itself was
stalled are skipped, not sent in a burst. Records go to a Parquet file in row groups every
``flush_every`` seconds and on stop; stop is prompt and idempotent.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.clock import Clock

__all__ = ["ParquetSink", "TickSampler"]

log = logging.getLogger(__name__)


class ParquetSink:
    """Buffers rows (dicts) and writes them as row groups of one Parquet file."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._writer: pq.ParquetWriter | None = None
        self.written = 0

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.path, self.schema)
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.written += len(rows)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._writer is None:  # nothing was recorded: still leave a (valid, empty) file
                self.path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(self.schema.empty_table(), self.path)
            else:
                self._writer.close()
                self._writer = None


class TickSampler:
    """Runs ``probe(tick_time)`` every ``interval`` seconds on a pool; subclasses give the probe."""

    def __init__(
        self,
        probe: Callable[[float], None],
        *,
        clock: Clock,
        interval: float,
        max_in_flight: int,
        flush_every: float = 2.0,
        on_flush: Callable[[], None] | None = None,
        name: str = "sampler",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.probe = probe
        self.clock = clock
        self.interval = interval
        self.flush_every = flush_every
        self.on_flush = on_flush
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix=name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.skipped_ticks = 0
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        t0 = self.clock.now()
        next_flush = t0 + self.flush_every
        i = 0
        while not self._stop.is_set():
            tick = t0 + i * self.interval
            now = self.clock.now()
            if tick > now:
                if self._stop.wait(tick - now):
                    break
            elif now - tick > self.interval:  # the machine stalled: skip the ticks that passed
                missed = math.floor((now - tick) / self.interval)
                self.skipped_ticks += missed
                i += missed
                continue
            self._pool.submit(self._safe_probe, self.clock.now())
            i += 1
            if self.on_flush is not None and self.clock.now() >= next_flush:
                self.on_flush()
                next_flush += self.flush_every

    def _safe_probe(self, t: float) -> None:
        try:
            self.probe(t)
        except Exception:  # a probe bug must not silently stop sampling: log it loudly, keep the schedule
            log.exception("%s: probe raised", self.name)
