"""The request sink and the schedule counters behind the recorder plugin (no Locust here: testable alone).

``RequestSink`` appends each request to plain Python lists (names and error kinds as small ints:
well under a microsecond a request) and streams them as Parquet row groups of
``drillbit.core.rundir.REQUEST_SCHEMA`` whenever 10,000 rows have piled up (and, from the plugin,
every second): an hour-long soak at thousands of requests a second costs a few MB of memory and no
per-request serialization. The rows go to part files, ``<run dir>/requests/worker-<n>.<k>.parquet``,
each closed (its footer written) once it has been open ``part_s`` seconds: a generator process
SIGKILLed mid-run loses at most its open part (a Parquet file without its footer is unreadable),
never the whole run's records; readers skip and count such a part
(``drillbit.probes.latency.unreadable_parts``).

``ScheduleStats`` are one generator process's open-model counters, written beside the Parquet
file as ``worker-<n>.json``: requests due, sent, not sent, the in-flight cap, and a histogram of
*generator lateness* (how late a request left the generator for reasons of its own: CPU, the
event loop; time spent waiting for the in-flight cap, i.e. for the server, is not counted).
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.rundir import REQUEST_SCHEMA, REQUESTS_DIR

__all__ = [
    "ABANDONED",
    "BATCH_ROWS",
    "LATENESS_EDGES_S",
    "NOT_SENT",
    "PART_S",
    "SHED",
    "PartWriter",
    "RequestSink",
    "ScheduleStats",
    "error_kind",
    "lateness_quantile",
    "merge_lateness",
]

BATCH_ROWS = 10_000
_EMPTY = pa.RecordBatch.from_pylist([], schema=REQUEST_SCHEMA)
#: a part file is closed (and a new one begun) once it has been open this long
PART_S = 5.0
#: error kind of a request that was due but never sent (the test stopped while it waited)
NOT_SENT = "not_sent"
#: error kind of a request still in flight when the test stopped (its outcome is unknown)
ABANDONED = "abandoned"
#: upper edges (seconds) of the generator-lateness histogram buckets; the last bucket is open
LATENESS_EDGES_S: tuple[float, ...] = tuple(m * 10.0**e for e in range(-5, 2) for m in (1.0, 2.0, 5.0))  # 10 us .. 50 s


#: error kind of a request the service refused on purpose (429 or 503 with Retry-After): shed load
SHED = "shed"
SHED_STATUSES = (429, 503)


def error_kind(exception: BaseException | None, status: int, retry_after: bool = False) -> str | None:
    """The REQUEST_SCHEMA error kind of a request Locust reported (None: it succeeded).

    A 429 or 503 that carries ``Retry-After`` is shed load (the service refused it before doing
    anything, and said when to retry): counted apart from other failures, never silently."""
    if exception is None:
        return None
    name = type(exception).__name__.lower()
    if isinstance(exception, TimeoutError) or "timeout" in name:
        return "timeout"
    if status == 0:
        return "connection"
    if status in SHED_STATUSES and retry_after:
        return SHED
    if status >= 400:
        return "http"
    return "assert"  # the locustfile failed a response it got (catch_response)


class PartWriter:
    """Record batches -> ``<dir>/<stem>.<k>.parquet`` part files, each closed once open ``part_s`` seconds."""

    def __init__(self, directory: Path, stem: str, part_s: float = PART_S) -> None:
        self.dir, self.stem, self.part_s = Path(directory), stem, part_s
        self.part = 0  # the part the next write goes to
        self.parts_closed = 0
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._opened = 0.0

    @property
    def path(self) -> Path:
        return self.dir / f"{self.stem}.{self.part:05d}.parquet"

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            if self._writer is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.path, REQUEST_SCHEMA)
                self._opened = time.monotonic()
            self._writer.write_batch(batch)
            self.rows += batch.num_rows
        if self._writer is not None and time.monotonic() - self._opened >= self.part_s:
            self.close()

    def close(self) -> None:
        """Close the open part (the next write begins a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.part += 1
            self.parts_closed += 1


class RequestSink:
    """Column buffers for one worker's requests, streamed to Parquet part files of at most ``part_s``
    seconds, or (``send``: a remote worker) handed as record batches to ``send`` at each flush."""

    def __init__(self, run_dir: Path | None, worker: int, batch_rows: int = BATCH_ROWS, part_s: float = PART_S,
                 send: Callable[[pa.RecordBatch], None] | None = None) -> None:  # fmt: skip
        if (run_dir is None) == (send is None):
            raise ValueError("give a run directory to write to, or send to forward the batches")
        self.worker = worker
        self.batch_rows = batch_rows
        self.send = send
        self.parts = PartWriter(Path(run_dir or ".") / REQUESTS_DIR, f"worker-{worker}", part_s)
        self.rows = 0
        self._names: dict[str, int] = {}
        self._kinds: dict[str, int] = {}
        self._reset()
        self._batch()  # warm up: pyarrow's first conversion of Python objects costs ~0.2 s (lazy imports)

    def _reset(self) -> None:
        self._name: list[int] = []
        self._intended: list[float] = []
        self._start: list[float] = []
        self._latency: list[float] = []
        self._status: list[int] = []
        self._error: list[int] = []

    def add(self, name: str, intended: float, start: float, latency: float, status: int, error: str | None) -> None:
        """One request: times in epoch seconds, latency in seconds (NaN when never sent / answered)."""
        code = self._names.get(name)
        if code is None:
            code = self._names[name] = len(self._names)
        self._name.append(code)
        self._intended.append(intended)
        self._start.append(start)
        self._latency.append(latency)
        self._status.append(status)
        if error is None:
            self._error.append(-1)
        else:
            kind = self._kinds.get(error)
            if kind is None:
                kind = self._kinds[error] = len(self._kinds)
            self._error.append(kind)
        if len(self._start) >= self.batch_rows:
            self.flush()

    @property
    def buffered(self) -> int:
        return len(self._start)

    def _batch(self) -> pa.RecordBatch:
        err = np.array(self._error, dtype=np.int32)
        return pa.RecordBatch.from_arrays(
            [
                pa.DictionaryArray.from_arrays(
                    np.array(self._name, dtype=np.int32), pa.array(list(self._names), pa.string())
                ),
                pa.array(np.array(self._intended, dtype=np.float64)),
                pa.array(np.array(self._start, dtype=np.float64)),
                pa.array(np.array(self._latency, dtype=np.float64)),
                pa.array(np.array(self._status, dtype=np.int16)),
                pa.DictionaryArray.from_arrays(pa.array(err, mask=err < 0), pa.array(list(self._kinds), pa.string())),
                pa.array(np.full(len(err), self.worker, dtype=np.int16)),
            ],
            schema=REQUEST_SCHEMA,
        )

    @property
    def path(self) -> Path:
        """The part file the next flush writes to."""
        return self.parts.path

    @property
    def part(self) -> int:
        return self.parts.part

    @property
    def parts_closed(self) -> int:
        return self.parts.parts_closed

    def flush(self) -> None:
        """Write what is buffered as one row group of the open part (a part is created by the first
        flush after the previous one closed), then close the part if it has been open ``part_s``;
        with ``send``, hand it to ``send`` instead."""
        n = len(self._start)
        batch = self._batch() if n else None
        if n:
            self._reset()
            self.rows += n
        if self.send is not None:
            if batch is not None:
                self.send(batch)
        elif batch is not None:
            self.parts.write(batch)
        else:
            self.parts.write(_EMPTY)  # closes a part open past part_s

    def close(self) -> None:
        self.flush()
        self.parts.close()


@dataclass
class ScheduleStats:
    """One generator process's open-model schedule: what was due, what left, and how late."""

    worker: int = 0
    share: float = 1.0  # this process's share of the profile's rate
    t0: float | None = None  # when the schedule started (epoch s)
    t_end: float | None = None  # when it ended or was stopped
    sent: int = 0  # requests handed to the HTTP client
    not_sent: int = 0  # due but never sent: the test stopped first (recorded with error "not_sent")
    abandoned: int = 0  # in flight when the test stopped (recorded with error "abandoned")
    capped: int = 0  # requests that had to wait for the in-flight cap (the server was slow to answer)
    cap_wait_s: float = 0.0  # total time the schedule waited for the cap
    lateness_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_EDGES_S) + 1))
    lateness_max_s: float = 0.0

    @property
    def due(self) -> int:
        return self.sent + self.not_sent

    def add_lateness(self, seconds: float) -> None:
        """Generator lateness of one request (seconds it left late, cap waits excluded)."""
        self.lateness_counts[bisect.bisect_left(LATENESS_EDGES_S, seconds)] += 1
        if seconds > self.lateness_max_s:
            self.lateness_max_s = seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "due": self.due, "lateness_edges_s": list(LATENESS_EDGES_S)}

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / REQUESTS_DIR / f"worker-{self.worker}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()))
        return path


def merge_lateness(stats: list[dict[str, Any]]) -> list[int]:
    """Sum the lateness histograms of several workers' ``ScheduleStats.to_dict()``."""
    total = [0] * (len(LATENESS_EDGES_S) + 1)
    for s in stats:
        for i, c in enumerate(s.get("lateness_counts", [])[: len(total)]):
            total[i] += int(c)
    return total


def lateness_quantile(counts: list[int], q: float) -> float | None:
    """Upper bound (a bucket's upper edge) of the q-quantile of a lateness histogram; None when empty."""
    n = sum(counts)
    if n == 0:
        return None
    rank = math.ceil(q * n)
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= max(rank, 1):
            return LATENESS_EDGES_S[i] if i < len(LATENESS_EDGES_S) else math.inf
    return math.inf
