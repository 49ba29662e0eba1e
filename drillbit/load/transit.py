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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from drillbit.core.rundir import REQUEST_SCHEMA, REQUESTS_DIR, TRANSIT_FILE
from drillbit.load.recording import PART_S, PartWriter

__all__ = ["RECORDS_END_MESSAGE", "RECORDS_MESSAGE", "RecordReceiver", "decode_batch", "encode_batch", "end_message"]

#: the custom message types (worker -> master)
RECORDS_MESSAGE = "drill_records"
RECORDS_END_MESSAGE = "drill_records_end"

_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


def encode_batch(batch: pa.RecordBatch, worker: int, seq: int) -> dict[str, Any]:
    """One flush of a worker's records as a message body (msgpack-friendly: ints and bytes)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_IPC) as writer:
        writer.write_batch(batch)
    return {"worker": worker, "seq": seq, "rows": batch.num_rows, "data": sink.getvalue().to_pybytes()}


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


def end_message(worker: int, batches: int, rows: int, schedule: dict[str, Any] | None) -> dict[str, Any]:
    """A worker's last word: how many batches and rows it sent, and its schedule counters."""
    return {"worker": worker, "batches": batches, "rows": rows, "schedule": schedule}


@dataclass
class _Worker:
    writer: PartWriter
    received: set[int] = field(default_factory=set)
    rows: int = 0
    bad: int = 0  # messages that could not be read
    sent_batches: int | None = None  # from the end message
    sent_rows: int | None = None

    def account(self) -> dict[str, Any]:
        last = self.sent_batches if self.sent_batches is not None else max(self.received, default=-1) + 1
        expected = range(last)
        missing = [s for s in expected if s not in self.received]
        lost = None if self.sent_rows is None else self.sent_rows - self.rows
        return {"ended": self.sent_batches is not None, "batches_sent": self.sent_batches, "rows_sent": self.sent_rows,
                "batches_received": len(self.received), "rows_received": self.rows, "missing_batches": missing[:100],
                "missing_batch_count": len(missing), "unreadable_batches": self.bad, "rows_lost": lost}  # fmt: skip


class RecordReceiver:
    """The master's side: remote workers' batches -> part files, and the transit account."""

    def __init__(self, run_dir: Path, part_s: float = PART_S) -> None:
        self.dir = Path(run_dir) / REQUESTS_DIR
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
        return path
