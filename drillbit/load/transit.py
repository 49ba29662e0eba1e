"""Request records in transit from remote generator processes to the master (no Locust here: testable alone).

A worker that cannot write into the run directory (another machine, a pod) sends its records to
the Locust master in custom messages (``drillbit.load.recorder`` wires Locust's
``send_message``/``register_message``). Each message is one flush of the worker's
``RequestSink``: a record batch as a zstd-compressed Arrow IPC stream, with the worker's
sequence number and row count (``encode_batch``). When its test stops, the worker sends an end
message with how many batches and rows it sent, and its schedule counters (``end_message``).

The master's ``RecordReceiver`` writes each worker's batches to the same part files a local
worker would (``requests/worker-<n>.<k>.parquet``) and accounts for transit in
``requests/transit.json``: per worker the batches and rows received, the sequence numbers missing,
and what the worker said it sent. Rows sent and not received are *lost in transit*; a worker whose
end message never came (killed, partitioned) is *unaccounted*: what it sent is unknown. Either
makes the latency analysis INCONCLUSIVE (``drillbit.probes.latency``), never a silent undercount.

The drill cannot read a process on another machine, so every message also carries the sending
process's own figures (``process_sample``: cumulative CPU seconds, its main thread's run and
run-queue time from schedstat, resident memory, pid, hostname). The master turns consecutive ones
into CPU and busy shares of a core (as ``drillbit.load.cpu`` does for local processes) and writes
them, with the memory, to ``samples/harness_remote.parquet`` (``drillbit.core.rundir.HARNESS_SCHEMA``,
``remote`` true): the saturation judgement covers remote workers (``drillbit.load.runner``) and a
soak's memory drift their memory (``drillbit.probes.drift``).
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.clock import Clock
from drillbit.core.rundir import HARNESS_REMOTE, HARNESS_SCHEMA, REQUEST_SCHEMA, REQUESTS_DIR, TRANSIT_FILE
from drillbit.load.cpu import schedstat_ns
from drillbit.load.recording import PART_S, PartWriter

__all__ = [
    "MIN_CPU_INTERVAL_S", "RECORDS_END_MESSAGE", "RECORDS_MESSAGE", "RecordReceiver", "decode_batch", "encode_batch",
    "end_message", "process_sample", "remote_rows",
]  # fmt: skip

#: the custom message types (worker -> master)
RECORDS_MESSAGE = "drill_records"
RECORDS_END_MESSAGE = "drill_records_end"

_IPC = pa.ipc.IpcWriteOptions(compression="zstd")
#: CPU shares are worked out over at least this long: the end message follows the last flush by milliseconds,
#: over which a 10 ms CPU-time tick would read as hundreds of percent
MIN_CPU_INTERVAL_S = 0.5


def process_sample(now: float | None = None) -> dict[str, Any]:
    """This process's own figures now (msgpack-friendly): ``t`` (the run's clock), ``pid``, ``host``,
    ``rss`` (bytes), ``cpu_s`` (user + system CPU seconds so far) and ``sched_ns`` (its main thread's
    nanoseconds run plus waited for a CPU so far; None where schedstat is unavailable)."""
    proc = psutil.Process()
    times = proc.cpu_times()
    return {"t": Clock.from_env().now() if now is None else now, "pid": proc.pid, "host": socket.gethostname(),
            "rss": int(proc.memory_info().rss), "cpu_s": float(times.user + times.system),
            "sched_ns": schedstat_ns(proc.pid)}  # fmt: skip


def encode_batch(batch: pa.RecordBatch, worker: int, seq: int, proc: dict[str, Any] | None = None) -> dict[str, Any]:
    """One flush of a worker's records as a message body (msgpack-friendly: ints and bytes), with the
    sending process's own figures (``proc``; default: ``process_sample()`` now)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_IPC) as writer:
        writer.write_batch(batch)
    return {"worker": worker, "seq": seq, "rows": batch.num_rows, "data": sink.getvalue().to_pybytes(),
            "proc": process_sample() if proc is None else proc}  # fmt: skip


def decode_batch(body: dict[str, Any]) -> pa.RecordBatch:
    """The record batch of a message body; raises ValueError when it is not one of REQUEST_SCHEMA."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body["data"])).read_all()
    except (pa.ArrowInvalid, KeyError, TypeError) as err:
        raise ValueError(f"an unreadable record batch: {err}") from None
    if table.schema != REQUEST_SCHEMA or table.num_rows != int(body.get("rows", -1)):
        raise ValueError("a record batch of another schema, or not the rows it claims")
    if not table.num_rows:
        return pa.RecordBatch.from_pylist([], schema=REQUEST_SCHEMA)
    return table.combine_chunks().to_batches()[0]


def end_message(worker: int, batches: int, rows: int, schedule: dict[str, Any] | None,
                proc: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A worker's last word: how many batches and rows it sent, its schedule counters, and its own figures."""
    return {"worker": worker, "batches": batches, "rows": rows, "schedule": schedule,
            "proc": process_sample() if proc is None else proc}  # fmt: skip


def _proc(body: dict[str, Any]) -> dict[str, Any] | None:
    """A message's process figures, checked (None: absent, an older worker); ValueError when malformed."""
    proc = body.get("proc")
    if proc is None:
        return None
    try:
        t, cpu_s, rss = float(proc["t"]), float(proc["cpu_s"]), int(proc["rss"])
        out = {"t": t, "pid": int(proc["pid"]), "host": str(proc["host"]), "rss": rss, "cpu_s": cpu_s,
               "sched_ns": None if proc.get("sched_ns") is None else int(proc["sched_ns"])}  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"malformed process figures: {proc!r:.200}") from None
    if not (math.isfinite(t) and math.isfinite(cpu_s) and rss >= 0 and cpu_s >= 0):
        raise ValueError(f"process figures out of range: {proc!r:.200}")
    return out


def remote_rows(worker: int, samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A remote worker's own figures (``process_sample`` dicts) as ``HARNESS_SCHEMA`` columns: the CPU and
    busy shares over the interval since the process's previous figures (NaN for its first, and for figures
    less than ``MIN_CPU_INTERVAL_S`` after the previous ones, which then stay the base of the next interval)."""
    cols: dict[str, list[Any]] = {name: [] for name in HARNESS_SCHEMA.names}
    last: dict[int, dict[str, Any]] = {}  # per pid: the base of the next interval
    latest: dict[int, float] = {}  # per pid: the time of the last row
    for s in sorted(samples, key=lambda x: (x["pid"], x["t"])):
        if s["t"] <= latest.get(s["pid"], -math.inf):
            continue  # the same reading twice
        latest[s["pid"]] = s["t"]
        prev = last.get(s["pid"])
        cpu = busy = math.nan
        if prev is None:
            last[s["pid"]] = s
        elif (dt := s["t"] - prev["t"]) >= MIN_CPU_INTERVAL_S:
            cpu = max(0.0, (s["cpu_s"] - prev["cpu_s"]) / dt * 100)
            busy = cpu
            if s["sched_ns"] is not None and prev["sched_ns"] is not None:
                busy = max(cpu, (s["sched_ns"] - prev["sched_ns"]) / 1e9 / dt * 100)
            last[s["pid"]] = s
        for name, value in (("t", s["t"]), ("role", "worker"), ("worker", worker), ("pid", s["pid"]),
                            ("host", s["host"]), ("remote", True), ("rss_bytes", s["rss"]),
                            ("cpu_percent", cpu), ("busy_percent", busy)):  # fmt: skip
            cols[name].append(value)
    return cols


@dataclass
class _Worker:
    writer: PartWriter
    received: set[int] = field(default_factory=set)
    rows: int = 0
    bad: int = 0  # messages that could not be read
    sent_batches: int | None = None  # from the end message
    sent_rows: int | None = None
    proc: list[dict[str, Any]] = field(default_factory=list)  # its own figures, one per message
    bad_proc: int = 0  # messages whose figures could not be read

    def on_proc(self, body: dict[str, Any]) -> None:
        try:
            proc = _proc(body)
        except ValueError:
            self.bad_proc += 1
            return
        if proc is not None:
            self.proc.append(proc)

    def account(self) -> dict[str, Any]:
        last = self.sent_batches if self.sent_batches is not None else max(self.received, default=-1) + 1
        expected = range(last)
        missing = [s for s in expected if s not in self.received]
        lost = None if self.sent_rows is None else self.sent_rows - self.rows
        return {"ended": self.sent_batches is not None, "batches_sent": self.sent_batches, "rows_sent": self.sent_rows,
                "batches_received": len(self.received), "rows_received": self.rows, "missing_batches": missing[:100],
                "missing_batch_count": len(missing), "unreadable_batches": self.bad, "rows_lost": lost,
                "process_samples": len(self.proc), "unreadable_process_samples": self.bad_proc}  # fmt: skip


class RecordReceiver:
    """The master's side: remote workers' batches -> part files, and the transit account."""

    def __init__(self, run_dir: Path, part_s: float = PART_S) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / REQUESTS_DIR
        self.part_s = part_s
        self.workers: dict[int, _Worker] = {}

    def _worker(self, worker: int) -> _Worker:
        if worker not in self.workers:
            self.workers[worker] = _Worker(PartWriter(self.dir, f"worker-{worker}", self.part_s))
        return self.workers[worker]

    def on_batch(self, body: dict[str, Any]) -> None:
        w = self._worker(int(body["worker"]))
        seq = int(body["seq"])
        if seq in w.received:
            return  # a message delivered twice is written once
        w.on_proc(body)
        try:
            batch = decode_batch(body)
        except ValueError:
            w.bad += 1
            return
        w.writer.write(batch)
        w.received.add(seq)
        w.rows += batch.num_rows

    def on_end(self, body: dict[str, Any]) -> None:
        w = self._worker(int(body["worker"]))
        w.sent_batches, w.sent_rows = int(body["batches"]), int(body["rows"])
        w.on_proc(body)
        schedule = body.get("schedule")
        if isinstance(schedule, dict):
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / f"worker-{int(body['worker'])}.json").write_text(json.dumps(schedule))
        w.writer.close()

    def account(self) -> dict[str, Any]:
        workers = {str(k): w.account() for k, w in sorted(self.workers.items())}
        unaccounted = [k for k, a in workers.items() if not a["ended"]]
        lost = sum(a["rows_lost"] for a in workers.values() if a["rows_lost"] is not None)
        return {"workers": workers, "unaccounted_workers": unaccounted, "rows_lost": lost,
                "rows_received": sum(a["rows_received"] for a in workers.values())}  # fmt: skip

    def close(self) -> Path:
        """Close every part and write ``requests/transit.json`` (again on every call: the latest account)."""
        for w in self.workers.values():
            w.writer.close()
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / TRANSIT_FILE
        path.write_text(json.dumps(self.account(), indent=2))
        self._write_samples()
        return path

    def _write_samples(self) -> None:
        """The remote workers' own figures -> ``samples/harness_remote.parquet`` (replaced whole, atomically)."""
        cols: dict[str, list[Any]] = {name: [] for name in HARNESS_SCHEMA.names}
        for k, w in sorted(self.workers.items()):
            for name, values in remote_rows(k, w.proc).items():
                cols[name] += values
        if not cols["t"]:
            return
        path = self.run_dir / HARNESS_REMOTE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table(cols, schema=HARNESS_SCHEMA), tmp)
        os.replace(tmp, path)
