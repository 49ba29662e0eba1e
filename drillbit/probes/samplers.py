"""The sampler machinery: fixed ticks on the drill clock, bounded concurrent probes, crash-safe files.

``TickSampler`` fires ``probe(tick)`` at ``t0 + i * interval`` on the drill clock. Each probe runs
on its own worker thread (at most ``max_in_flight`` at once), so a probe hanging until its
timeout does not delay the next one: a stall must be observed, not waited out. When every slot is
busy (probes overran), the tick is skipped and counted, never queued: a backlog would send stale
probes in a burst after the stall. Ticks missed because the machine itself stalled are skipped
too, not replayed. A probe records its own *true* send time; the tick is only the schedule.

``ParquetSink`` buffers rows and appends them every ``flush_every`` seconds to a journal (an Arrow
IPC stream, ``<file>.journal``, readable up to its last complete batch even after a crash); on
close the journal becomes the Parquet file named by ``drillbit.core.rundir`` and is removed. So an
interrupted drill keeps what it measured: ``read_samples`` reads the Parquet file, or the journal
when the run never closed it, and ``recover_journals`` converts leftover journals into Parquet.

A small JSON sidecar (``<file>.json``, e.g. ``samples/availability.json``) says how a sampler
measured (interval, timeout, skipped ticks, when its probes raised) and whether its thread died,
so analyzers can state their bounds and prove their coverage (``drillbit.probes.coverage``). A ticking
thread that raises (e.g. a flush that fails) is recorded as ``died`` and ``died_at`` and logged;
``Sampler.stop`` then raises ``SamplerDied``: a dead sampler is never silence.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.clock import Clock

__all__ = [
    "ParquetSink",
    "Sampler",
    "SamplerDied",
    "TickSampler",
    "journal_path",
    "meta_path",
    "read_meta",
    "read_samples",
    "recover_journals",
    "write_meta",
]

log = logging.getLogger(__name__)

#: at most this many probe-error times are kept in the sidecar (the count is exact)
MAX_ERROR_TIMES = 1000


class SamplerDied(RuntimeError):
    """A sampler's ticking thread died during the run: its samples end there."""


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write the sampler's sidecar next to its samples file (atomically)."""
    target = meta_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp, target)


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar of a samples file, or ``{}`` when there is none (samples written by other tools)."""
    target = meta_path(path)
    if not target.exists():
        return {}
    data = json.loads(target.read_text())
    return data if isinstance(data, dict) else {}


def _read_journal(journal: Path, schema: pa.Schema) -> pa.Table:
    """Every complete batch of a journal; a batch torn by a crash (and what follows) is dropped."""
    batches: list[pa.RecordBatch] = []
    with pa.OSFile(str(journal), "rb") as f:
        try:
            reader = pa.ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError) as err:  # torn before the first batch
            log.warning("%s: unreadable journal header (%s): no rows recovered", journal, err)
            return schema.empty_table()
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError) as err:
                log.warning("%s: journal torn after %d batches (%s): keeping those", journal, len(batches), err)
                break
    return pa.Table.from_batches(batches, schema=schema)


def read_samples(path: Path, schema: pa.Schema, *, live: bool = False) -> pa.Table:
    """The samples at ``path``: the Parquet file, else (a drill interrupted before stop, or ``live``:
    a sampler still running) its journal."""
    if path.exists():
        return pq.read_table(path, schema=schema)
    journal = journal_path(path)
    if journal.exists():
        if not live:
            log.warning("%s was never closed (interrupted drill?): reading its journal", path)
        return _read_journal(journal, schema)
    raise FileNotFoundError(f"no samples at {path}")


def recover_journals(run_dir: Path | str, schemas: dict[str, pa.Schema]) -> list[Path]:
    """Turn the journals an interrupted drill left into Parquet files; ``schemas``: rundir name -> schema.

    Returns the Parquet files written. A samples file that already exists is left alone.
    """
    written = []
    for name, schema in schemas.items():
        path = Path(run_dir) / name
        journal = journal_path(path)
        if journal.exists() and not path.exists():
            _write_parquet(path, _read_journal(journal, schema))
            journal.unlink()
            written.append(path)
    return written


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class ParquetSink:
    """Rows (dicts) -> journal batches on ``flush()`` -> one Parquet file on ``close()`` (idempotent)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.journal = journal_path(path)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._closed = False
        self.written = 0

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path}: sink already closed")
            self._rows.append(row)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = pa.OSFile(str(self.journal), "wb")
            self._writer = pa.ipc.new_stream(self._file, self.schema)
        self._writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=self.schema))
        assert self._file is not None
        self._file.flush()
        self.written += len(rows)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
            if self._writer is None:  # nothing recorded: still leave a valid, empty file
                table = self.schema.empty_table()
            else:
                self._writer.close()
                assert self._file is not None
                self._file.close()
                table = _read_journal(self.journal, self.schema)
            _write_parquet(self.path, table)
            self.journal.unlink(missing_ok=True)


class TickSampler:
    """Calls ``probe(tick)`` every ``interval`` s on at most ``max_in_flight`` worker threads."""

    def __init__(
        self,
        probe: Callable[[float], None],
        *,
        clock: Clock,
        interval: float,
        max_in_flight: int = 1,
        flush_every: float = 2.0,
        on_flush: Callable[[], None] | None = None,
        name: str = "sampler",
    ) -> None:
        if interval <= 0 or not math.isfinite(interval):
            raise ValueError("interval must be a positive number of seconds")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.probe = probe
        self.clock = clock
        self.interval = interval
        self.flush_every = flush_every
        self.on_flush = on_flush
        self.name = name
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix=name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._state_lock = threading.Lock()
        self._started = self._stopped = False
        self.sent = 0  # probes started
        self.skipped_ticks = 0  # ticks with no probe: every slot busy (overrun) or the machine stalled
        self.probe_errors = 0  # probes that raised (a bug: logged with its traceback)
        self.probe_error_times: list[float] = []  # when (the first MAX_ERROR_TIMES of them)
        self.died: str | None = None  # the ticking thread raised: why (it stopped then)
        self.died_at: float | None = None

    def start(self) -> None:
        with self._state_lock:
            if self._stopped:
                raise RuntimeError(f"{self.name}: a stopped sampler cannot be restarted")
            if not self._started:
                self._started = True
                self._thread.start()

    def stop(self) -> None:
        """Stop ticking and wait for the probes in flight (each bounded by its own timeout). Idempotent."""
        with self._state_lock:
            self._stopped = True
            self._stop.set()
        if self._started:
            self._thread.join()
        self._pool.shutdown(wait=True)

    def stats(self) -> dict[str, Any]:
        return {"sent": self.sent, "skipped_ticks": self.skipped_ticks, "probe_errors": self.probe_errors,
                "probe_error_times": list(self.probe_error_times), "died": self.died,
                "died_at": self.died_at}  # fmt: skip

    def _run(self) -> None:
        try:
            self._tick()
        except Exception as err:  # recorded, logged, and raised again by Sampler.stop: never silent
            self.died, self.died_at = f"{type(err).__name__}: {err}", self.clock.now()
            log.exception("%s: the sampler died; its samples end here", self.name)

    def _tick(self) -> None:
        t0 = self.clock.now()
        next_flush = t0 + self.flush_every
        i = 0
        while True:
            tick = t0 + i * self.interval
            delay = tick - self.clock.now()
            if delay > 0 and self._stop.wait(delay):
                break
            if self._stop.is_set():
                break
            late = self.clock.now() - tick
            if late >= self.interval:  # this thread or the machine stalled: skip to the current tick
                missed = math.floor(late / self.interval)
                self.skipped_ticks += missed
                i += missed
                tick = t0 + i * self.interval
            if self._slots.acquire(blocking=False):
                self.sent += 1
                self._pool.submit(self._call, tick)
            else:  # every slot busy: the previous probes overran; they will record themselves
                self.skipped_ticks += 1
            i += 1
            if self.on_flush is not None and self.clock.now() >= next_flush:
                self.on_flush()
                next_flush = self.clock.now() + self.flush_every

    def _call(self, tick: float) -> None:
        try:
            self.probe(tick)
        except Exception:  # a probe bug must not stop sampling: log it loudly, count it, keep the schedule
            with self._state_lock:
                self.probe_errors += 1
                if len(self.probe_error_times) < MAX_ERROR_TIMES:
                    self.probe_error_times.append(self.clock.now())
            log.exception("%s: probe raised", self.name)
        finally:
            self._slots.release()


class Sampler:
    """The lifecycle every sampler shares: ``start`` records its settings and starts the ticks;
    ``stop`` (idempotent) stops them, lets the sampler release what it holds, closes the Parquet
    file and records the final settings and counts. Subclasses set ``path``, ``sink`` and
    ``_ticks`` and give ``_meta``; they may override ``_prepare`` and ``_release``."""

    path: Path
    sink: ParquetSink
    _ticks: TickSampler

    def __init__(self) -> None:
        self._lifecycle_lock = threading.Lock()
        self._stopped = False

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def _final_meta(self) -> dict[str, Any]:
        return {**self._meta(), "samples": self.sink.written}

    def _prepare(self) -> None:
        """Before the first tick (e.g. create a table)."""

    def _release(self) -> None:
        """After the last probe, before the file is closed (e.g. close connections)."""

    def start(self) -> Self:
        self._prepare()
        write_meta(self.path, self._meta())
        self._ticks.start()
        return self

    def stop(self) -> None:
        with self._lifecycle_lock:
            if self._stopped:
                return
            self._stopped = True
        self._ticks.stop()
        self._release()
        self.sink.close()
        write_meta(self.path, self._final_meta())
        if self._ticks.died is not None:
            raise SamplerDied(f"{self._ticks.name} sampler died at {self._ticks.died_at}: {self._ticks.died}")

    @property
    def died(self) -> str | None:
        """Why the sampler's thread died (None: alive or stopped normally)."""
        return self._ticks.died

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
