"""The harness's own samples: the drill's sampler, remote workers' figures in transit, and the saturation
judgement that names the busiest generator process, local or remote."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import HARNESS_REMOTE, HARNESS_SCHEMA, read_transit
from drillbit.load.cpu import CpuSample, CpuSampler, harness_table
from drillbit.load.profiles import Profile, load_profile
from drillbit.load.recording import RequestSink, ScheduleStats
from drillbit.load.runner import summarize
from drillbit.load.transit import RecordReceiver, encode_batch, end_message, process_sample

T0 = 1_800_000_000.0


def _body(worker: int, seq: int, proc: dict[str, Any] | None) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []
    sink = RequestSink(None, worker, send=lambda b: sent.append(encode_batch(b, worker, seq, proc)))
    sink.add("GET /x", math.nan, T0 + seq, 0.002, 200, None)
    sink.flush()
    return sent[0]


def _proc(i: int, *, cpu_per_s: float, busy_per_s: float, pid: int = 77, rss: int = 50_000_000) -> dict[str, Any]:
    """A remote worker's cumulative figures at second ``i``: it used ``cpu_per_s`` of a core, and its main
    thread ran or waited for a CPU ``busy_per_s`` of the time."""
    return {"t": T0 + i, "pid": pid, "host": "loadgen-2", "rss": rss + i * 1000, "cpu_s": 10.0 + i * cpu_per_s,
            "sched_ns": int(5e9 + i * busy_per_s * 1e9)}  # fmt: skip


def _profile(tmp_path: Path) -> Profile:
    path = tmp_path / "p.yaml"
    path.write_text("name: t\nmodel: open\nstages:\n  - {duration: 10, rate: 100}\n")
    return load_profile(path)


def _run(tmp_path: Path) -> Path:
    """A run directory of one generator that sent all 1,000 requests on time."""
    run = tmp_path / "run"
    sink = RequestSink(run, 0)
    stats = ScheduleStats(worker=0, t0=T0, t_end=T0 + 10, sent=1000)
    for i in range(1000):
        sink.add("GET /ping", T0 + i / 100, T0 + i / 100, 0.002, 200, None)
        stats.add_lateness(0.0005)
    sink.close()
    stats.write(run)
    return run


def _remote_figures(run: Path, busy_per_s: float, worker: int = 3) -> None:
    receiver = RecordReceiver(run)
    for i in range(10):
        receiver.on_batch(_body(worker, i, _proc(i + 1, cpu_per_s=0.5, busy_per_s=busy_per_s)))
    receiver.on_end(end_message(worker, 10, 10, None, _proc(11, cpu_per_s=0.5, busy_per_s=busy_per_s)))
    receiver.close()


def test_a_record_batch_carries_the_sending_process_s_own_figures() -> None:
    body = _body(0, 0, None)
    proc = body["proc"]
    assert proc["pid"] == os.getpid() and proc["rss"] > 10_000_000 and proc["cpu_s"] > 0
    assert proc["host"] and math.isfinite(proc["t"])


def test_the_master_turns_a_remote_worker_s_cumulative_figures_into_shares_of_a_core(tmp_path: Path) -> None:
    _remote_figures(tmp_path, busy_per_s=0.9)
    table = pq.read_table(tmp_path / HARNESS_REMOTE)
    assert table.schema.equals(HARNESS_SCHEMA)
    rows = table.to_pylist()
    assert len(rows) == 11 and all(r["remote"] and r["worker"] == 3 and r["role"] == "worker" for r in rows)
    assert math.isnan(rows[0]["cpu_percent"])  # its first figures: no interval yet
    assert [round(r["cpu_percent"], 6) for r in rows[1:]] == [50.0] * 10
    assert [round(r["busy_percent"], 6) for r in rows[1:]] == [90.0] * 10
    assert rows[-1]["rss_bytes"] == 50_011_000
    account = read_transit(tmp_path)
    assert account is not None and account["workers"]["3"]["process_samples"] == 11


def test_figures_milliseconds_after_the_previous_ones_get_no_share_and_leave_the_base(tmp_path: Path) -> None:
    """The end message follows the last flush by milliseconds: a 10 ms CPU tick over 2 ms would read 500 %."""
    receiver = RecordReceiver(tmp_path)
    receiver.on_batch(_body(1, 0, _proc(1, cpu_per_s=0.5, busy_per_s=0.5)))
    receiver.on_batch(_body(1, 1, _proc(2, cpu_per_s=0.5, busy_per_s=0.5)))
    late = {**_proc(2, cpu_per_s=0.5, busy_per_s=0.5), "cpu_s": 11.01 + 0.001}
    late["t"] += 0.002
    receiver.on_end(end_message(1, 2, 2, None, late))
    receiver.close()
    rows = pq.read_table(tmp_path / HARNESS_REMOTE).to_pylist()
    assert len(rows) == 3 and rows[1]["cpu_percent"] == pytest.approx(50.0)
    assert math.isnan(rows[2]["cpu_percent"]) and rows[2]["rss_bytes"] == 50_002_000  # its memory still counts


def test_malformed_figures_are_counted_and_the_records_still_kept(tmp_path: Path) -> None:
    receiver = RecordReceiver(tmp_path)
    receiver.on_batch(_body(1, 0, {"t": "soon", "pid": 1}))
    receiver.close()
    account = read_transit(tmp_path)
    assert account is not None and account["workers"]["1"]["unreadable_process_samples"] == 1
    assert account["rows_received"] == 1 and not (tmp_path / HARNESS_REMOTE).exists()


def test_a_cpu_bound_remote_worker_saturates_the_generator_and_is_named(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _remote_figures(run, busy_per_s=0.97)
    r = summarize(run, _profile(tmp_path), cpu={4242: [CpuSample(T0 + 1 + i, 20.0, 21.0, 1.0) for i in range(9)]},
                  roles={4242: "master"})  # fmt: skip
    assert r.saturated and r.busiest_process == "remote worker 3 (pid 77 on loadgen-2)"
    assert r.reason is not None and "remote worker 3 (pid 77 on loadgen-2) was busy 97 % of the time" in r.reason
    assert "remote worker 3 (pid 77 on loadgen-2)" in r.cpu_samples


def test_a_remote_worker_with_room_to_spare_is_not_saturation(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _remote_figures(run, busy_per_s=0.6)
    r = summarize(run, _profile(tmp_path))
    assert not r.saturated and r.busy_percent_busiest == pytest.approx(60.0)


def test_the_busiest_local_process_is_named_by_its_role(tmp_path: Path) -> None:
    cpu = {11: [CpuSample(T0 + 1 + i, 95.0, 96.0, 1.0) for i in range(9)],
           12: [CpuSample(T0 + 1 + i, 30.0, 31.0, 1.0) for i in range(9)]}  # fmt: skip
    r = summarize(_run(tmp_path), _profile(tmp_path), cpu=cpu, roles={11: "worker", 12: "master"})
    assert r.saturated and r.busiest_process == "worker (pid 11)"
    assert "worker (pid 11) was busy 96 %" in (r.reason or "")


def test_a_remote_worker_that_sent_no_figures_is_said_to_be_unjudged(tmp_path: Path) -> None:
    run = _run(tmp_path)
    receiver = RecordReceiver(run)
    body = _body(5, 0, None)
    del body["proc"]  # an older worker
    receiver.on_batch(body)
    receiver.on_end({"worker": 5, "batches": 1, "rows": 1, "schedule": None})
    receiver.close()
    r = summarize(run, _profile(tmp_path))
    assert any("remote worker(s) 5 sent no CPU or memory figures" in n for n in r.notes), r.notes


def test_the_sampler_reads_memory_from_the_first_tick_and_tables_it_by_role() -> None:
    sampler = CpuSampler(os.getpid(), time.time, interval=60, descendants=False)
    sampler.sample()
    sampler.sample()
    table = harness_table(sampler, lambda _pid: "drill", "here")
    rows = table.to_pylist()
    assert [r["pid"] for r in rows] == [os.getpid()] * 2 and {r["role"] for r in rows} == {"drill"}
    assert all(r["rss_bytes"] > 10_000_000 and not r["remote"] for r in rows)
    assert math.isnan(rows[0]["cpu_percent"]) and math.isfinite(rows[1]["cpu_percent"])


def test_process_sample_reads_this_process() -> None:
    proc = process_sample(now=T0)
    assert proc["t"] == T0 and proc["pid"] == os.getpid() and proc["rss"] > 0
