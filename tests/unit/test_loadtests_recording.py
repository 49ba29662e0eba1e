"""The recorder's sink and schedule counters (no Locust): every request lands in Parquet, per the run-dir schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import REQUEST_SCHEMA, REQUESTS_DIR, request_parts
from drillbit.load.recording import (
    LATENESS_EDGES_S,
    NOT_SENT,
    RequestSink,
    ScheduleStats,
    error_kind,
    lateness_quantile,
    merge_lateness,
)


def test_every_request_is_written_in_the_run_dir_schema_in_row_groups(tmp_path: Path) -> None:
    sink = RequestSink(tmp_path, worker=3, batch_rows=1000)
    for i in range(2500):
        name = "POST /orders" if i % 2 else "GET /book/{symbol}"
        sink.add(name, 100.0 + i / 100, 100.0 + i / 100 + 0.001, 0.005, 201 if i % 2 else 200, None)
    sink.add("(not sent)", 200.0, math.nan, math.nan, 0, NOT_SENT)
    sink.add("POST /orders", 201.0, 201.0, 2.0, 0, "timeout")
    assert sink.rows == 2000 and sink.buffered == 502  # two full batches written as they filled
    sink.close()
    path = tmp_path / REQUESTS_DIR / "worker-3.00000.parquet"  # one part: it was open less than PART_S
    f = pq.ParquetFile(path)
    assert f.schema_arrow == REQUEST_SCHEMA
    assert f.metadata.num_row_groups == 3 and f.metadata.num_rows == 2502
    t = f.read()
    assert t["name"].to_pylist()[:2] == ["GET /book/{symbol}", "POST /orders"]
    assert set(t["worker"].to_pylist()) == {3}
    assert t["error"].null_count == 2500
    assert t["error"].to_pylist()[-2:] == ["not_sent", "timeout"]
    assert math.isnan(t["start"].to_pylist()[-2]) and math.isnan(t["latency"].to_pylist()[-2])
    assert t["intended"].to_pylist()[1] == pytest.approx(100.01)
    assert t["status"].to_pylist()[-1] == 0


def test_names_added_after_a_flush_keep_their_own_labels(tmp_path: Path) -> None:
    sink = RequestSink(tmp_path, worker=0, batch_rows=2)
    sink.add("A", 1.0, 1.0, 0.1, 200, None)
    sink.add("B", 1.0, 1.0, 0.1, 500, "http")  # flush here
    sink.add("C", 1.0, 1.0, 0.1, 200, None)
    sink.add("A", 1.0, 1.0, 0.1, 0, "connection")
    sink.close()
    t = pq.read_table(tmp_path / REQUESTS_DIR / "worker-0.00000.parquet")
    assert t["name"].to_pylist() == ["A", "B", "C", "A"]
    assert t["error"].to_pylist() == [None, "http", None, "connection"]


def test_rows_rotate_into_closed_parts_so_a_killed_process_loses_only_its_open_part(tmp_path: Path) -> None:
    """A part open part_s is closed at the next flush: its footer is written, it reads on its own."""
    sink = RequestSink(tmp_path, worker=1, part_s=0.0)  # every flush closes its part
    for part in range(3):
        for i in range(10):
            sink.add("GET /x", part + i / 100, part + i / 100, 0.001, 200, None)
        sink.flush()
    assert sink.parts_closed == 3 and sink.rows == 30
    sink.add("GET /x", 9.0, 9.0, 0.001, 200, None)
    slow = RequestSink(tmp_path, worker=2, part_s=3600.0)
    slow.add("GET /y", 1.0, 1.0, 0.001, 200, None)
    slow.flush()  # written into an open part: no footer until it closes
    readable, torn = request_parts(tmp_path)
    assert [f.name for f in readable] == [f"worker-1.{k:05d}.parquet" for k in range(3)]
    assert [f.name for f in torn] == ["worker-2.00000.parquet"]  # as a SIGKILL would leave it
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in readable) == 30
    slow.close()
    sink.close()
    readable, torn = request_parts(tmp_path)
    assert torn == [] and len(readable) == 5


def test_closing_an_unused_sink_writes_nothing(tmp_path: Path) -> None:
    sink = RequestSink(tmp_path, worker=0)
    sink.close()
    assert not (tmp_path / REQUESTS_DIR).exists()


def test_schedule_stats_histogram_and_quantiles(tmp_path: Path) -> None:
    s = ScheduleStats(worker=1, share=0.5, t0=10.0, t_end=20.0, sent=100, not_sent=3)
    for _ in range(98):
        s.add_lateness(0.0004)  # in the (0.2 ms, 0.5 ms] bucket
    s.add_lateness(0.03)
    s.add_lateness(1.5)
    assert s.due == 103
    assert lateness_quantile(s.lateness_counts, 0.5) == pytest.approx(0.0005)
    assert lateness_quantile(s.lateness_counts, 0.99) == pytest.approx(0.05)
    assert lateness_quantile(s.lateness_counts, 1.0) == pytest.approx(2.0)
    assert s.lateness_max_s == 1.5
    s.add_lateness(1000.0)  # beyond the last edge: the open bucket
    assert lateness_quantile(s.lateness_counts, 1.0) == math.inf
    written = json.loads(s.write(tmp_path).read_text())
    assert written["due"] == 103 and written["lateness_edges_s"] == list(LATENESS_EDGES_S)
    assert merge_lateness([written, written]) == [2 * c for c in s.lateness_counts]
    assert lateness_quantile([0] * 3, 0.5) is None


class _Timeout(Exception):
    pass


def test_error_kinds() -> None:
    assert error_kind(None, 200) is None
    assert error_kind(TimeoutError(), 0) == "timeout"
    assert error_kind(_Timeout(), 0) == "timeout"
    assert error_kind(ConnectionRefusedError(), 0) == "connection"
    assert error_kind(RuntimeError("HTTP 503"), 503) == "http"
    assert error_kind(AssertionError("bad body"), 200) == "assert"


def test_a_429_or_503_with_retry_after_is_shed_load_and_without_it_a_failure() -> None:
    assert error_kind(RuntimeError("HTTP 503"), 503, retry_after=True) == "shed"
    assert error_kind(RuntimeError("HTTP 429"), 429, retry_after=True) == "shed"
    assert error_kind(RuntimeError("HTTP 429"), 429) == "http"
    assert error_kind(RuntimeError("HTTP 500"), 500, retry_after=True) == "http"
