"""Request records in transit: encoding, and the master's account of what arrived."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import read_transit, request_parts
from drillbit.load.recording import RequestSink
from drillbit.load.transit import RecordReceiver, decode_batch, encode_batch, end_message


def _batches(worker: int, sizes: list[int]) -> list[dict[str, Any]]:
    """A worker's sink forwarding its flushes: one message per flush of ``sizes[i]`` requests."""
    sent: list[dict[str, Any]] = []
    sink = RequestSink(None, worker, send=lambda b: sent.append(encode_batch(b, worker, len(sent))))
    for n in sizes:
        for i in range(n):
            sink.add("GET /x", math.nan, 1000.0 + i, 0.002, 200, None)
        sink.flush()
    return sent


def test_a_batch_survives_the_trip_compressed() -> None:
    body = _batches(3, [1000])[0]
    batch = decode_batch(body)
    assert batch.num_rows == 1000 and body["rows"] == 1000 and set(batch.column("worker").to_pylist()) == {3}
    assert len(body["data"]) < 1000 * 14  # smaller than the raw columns


def test_a_corrupt_or_misdescribed_batch_is_refused() -> None:
    body = _batches(0, [10])[0]
    with pytest.raises(ValueError, match="unreadable"):
        decode_batch({**body, "data": body["data"][:40]})
    with pytest.raises(ValueError, match="not the rows it claims"):
        decode_batch({**body, "rows": 11})


def test_every_batch_received_once_and_the_end_message_balance_the_account(tmp_path: Path) -> None:
    receiver = RecordReceiver(tmp_path, part_s=0.0)
    sent = _batches(1, [5, 7, 9])
    for body in [*sent, sent[1]]:  # one delivered twice: written once
        receiver.on_batch(body)
    receiver.on_end(end_message(1, 3, 21, {"worker": 1, "sent": 21}))
    receiver.close()
    account = read_transit(tmp_path)
    assert account is not None and account["rows_lost"] == 0 and account["unaccounted_workers"] == []
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in request_parts(tmp_path)[0]) == 21
    assert (tmp_path / "requests" / "worker-1.json").exists()


def test_a_lost_batch_is_counted_with_its_rows_and_a_silent_worker_is_unaccounted(tmp_path: Path) -> None:
    receiver = RecordReceiver(tmp_path)
    first, lost, last = _batches(0, [4, 6, 8])
    receiver.on_batch(first)
    receiver.on_batch(last)
    receiver.on_end(end_message(0, 3, 18, None))
    receiver.on_batch(_batches(5, [3])[0])  # worker 5 never says what it sent (killed)
    account = receiver.account()
    assert account["workers"]["0"]["missing_batches"] == [lost["seq"]] and account["workers"]["0"]["rows_lost"] == 6
    assert account["rows_lost"] == 6 and account["unaccounted_workers"] == ["5"]
