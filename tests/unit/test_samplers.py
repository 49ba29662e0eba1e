"""Sampler machinery: fixed ticks under hanging probes, skip-not-queue, prompt idempotent stop, crash-safe files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from drillbit.core.clock import Clock
from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA, REPLICAS
from drillbit.probes.availability import AvailabilitySampler, availability_meta, load_availability
from drillbit.probes.replicas import ReplicasSampler, load_replicas
from drillbit.probes.samplers import ParquetSink, TickSampler, journal_path, read_samples, recover_journals

SCHEMA = pa.schema([("i", pa.int64()), ("kind", pa.dictionary(pa.int32(), pa.string()))])


class Recorder:
    """A probe that records (tick, start) and sleeps ``hold(n)`` seconds on its n-th call."""

    def __init__(self, clock: Clock, hold: dict[int, float] | None = None, default: float = 0.0) -> None:
        self.clock, self.hold, self.default = clock, hold or {}, default
        self.calls: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, tick: float) -> None:
        start = self.clock.now()
        with self._lock:
            n = len(self.calls)
            self.calls.append((tick, start))
        time.sleep(self.hold.get(n, self.default))


def test_hanging_probes_do_not_shift_the_schedule() -> None:
    clock = Clock()
    probe = Recorder(clock, default=0.35)  # every probe hangs 7 intervals
    ticks = TickSampler(probe, clock=clock, interval=0.05, max_in_flight=10)
    ticks.start()
    time.sleep(1.0)
    ticks.stop()
    tick_times = np.array(sorted(t for t, _ in probe.calls))
    starts = np.array([s for _, s in probe.calls])
    assert 17 <= len(tick_times) <= 21, len(tick_times)
    assert np.allclose(np.diff(tick_times), 0.05, atol=1e-9)  # fixed ticks, never pushed back
    assert ticks.skipped_ticks == 0
    assert np.max(starts - np.array([t for t, _ in probe.calls])) < 0.04  # each sent on (or just after) its tick


def test_an_overrun_skips_ticks_instead_of_queueing_them() -> None:
    clock = Clock()
    probe = Recorder(clock, hold={3: 0.33})  # the 4th probe overruns by more than 6 ticks
    ticks = TickSampler(probe, clock=clock, interval=0.05, max_in_flight=1)
    ticks.start()
    time.sleep(1.0)
    ticks.stop()
    starts = np.array([s for _, s in probe.calls])
    tick_times = np.array([t for t, _ in probe.calls])
    assert ticks.skipped_ticks >= 5
    # no burst after the overrun: consecutive probes are always about one interval or more apart
    assert np.min(np.diff(starts)) > 0.035, np.diff(starts)
    # and the schedule continues on the original grid
    grid = (tick_times - tick_times[0]) / 0.05
    assert np.allclose(grid, np.round(grid), atol=1e-6)
    assert len(probe.calls) + ticks.skipped_ticks >= 18


def test_stop_is_prompt_idempotent_and_safe_before_start() -> None:
    clock = Clock()
    never_started = TickSampler(Recorder(clock), clock=clock, interval=10.0)
    never_started.stop()
    ticks = TickSampler(Recorder(clock), clock=clock, interval=10.0)
    ticks.start()
    time.sleep(0.05)
    began = time.monotonic()
    ticks.stop()
    ticks.stop()
    assert time.monotonic() - began < 2.0  # not the 10 s interval: stop does not wait for a tick
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        ticks.start()


def test_a_probe_that_raises_is_counted_and_the_schedule_goes_on() -> None:
    clock = Clock()
    calls: list[float] = []

    def probe(tick: float) -> None:
        calls.append(tick)
        if len(calls) == 2:
            raise KeyError("a bug in a probe")

    ticks = TickSampler(probe, clock=clock, interval=0.02, max_in_flight=1)
    ticks.start()
    time.sleep(0.3)
    ticks.stop()
    assert ticks.probe_errors == 1 and len(calls) >= 8


def test_the_journal_keeps_what_was_measured_if_the_drill_never_stops(tmp_path: Path) -> None:
    path = tmp_path / "samples" / "x.parquet"
    sink = ParquetSink(path, SCHEMA)
    for i in range(5):
        sink.add({"i": i, "kind": "a"})
    sink.flush()
    sink.add({"i": 5, "kind": "b"})
    sink.flush()
    sink.add({"i": 6, "kind": "lost: never flushed"})
    assert not path.exists() and journal_path(path).exists()
    # the process "dies" here: the journal alone is readable
    assert read_samples(path, SCHEMA).column("i").to_pylist() == [0, 1, 2, 3, 4, 5]
    # a batch torn by the crash is dropped, the complete ones are kept
    data = journal_path(path).read_bytes()
    journal_path(path).write_bytes(data[:-20])
    assert read_samples(path, SCHEMA).column("i").to_pylist() == [0, 1, 2, 3, 4]
    assert recover_journals(tmp_path, {"samples/x.parquet": SCHEMA}) == [path]
    assert path.exists() and not journal_path(path).exists()
    assert read_samples(path, SCHEMA).num_rows == 5


def test_close_writes_parquet_once_and_a_second_close_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "y.parquet"
    sink = ParquetSink(path, SCHEMA)
    sink.add({"i": 1, "kind": "a"})
    sink.close()
    sink.close()
    assert read_samples(path, SCHEMA).column("i").to_pylist() == [1]
    assert not journal_path(path).exists()
    with pytest.raises(RuntimeError, match="closed"):
        sink.add({"i": 2, "kind": "a"})
    empty = ParquetSink(tmp_path / "z.parquet", SCHEMA)
    empty.close()
    assert read_samples(tmp_path / "z.parquet", SCHEMA).num_rows == 0
    with pytest.raises(FileNotFoundError):
        read_samples(tmp_path / "none.parquet", SCHEMA)


class Scripted:
    """A transaction (no server needed): what each call does, by call number."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self, client: httpx.Client, timeout: float) -> int:
        with self._lock:
            n = self.n
            self.n += 1
        if n == 2:
            return 503
        if n == 3:
            raise httpx.ConnectError("refused")
        if n == 4:
            raise httpx.ReadTimeout("no answer")
        if n == 5:
            time.sleep(timeout + 0.05)  # answered, but too late
        return 200


def test_availability_records_true_send_times_error_kinds_and_survives_a_double_stop(tmp_path: Path) -> None:
    clock = Clock()
    sampler = AvailabilitySampler(Scripted(), tmp_path, clock=clock, interval=0.05, timeout=0.2)
    with sampler:
        time.sleep(0.6)
    sampler.stop()  # after __exit__: must not clobber the file
    s = load_availability(tmp_path)
    assert 9 <= len(s) <= 14
    kinds = s.sort_values("t")["error"].astype(object).tolist()
    assert kinds[2:6] == ["http", "connection", "timeout", "late"], kinds[:8]
    assert s["ok"].sum() == len(s) - 4
    assert np.isnan(s["latency"].iloc[3]) and s["latency"].iloc[5] > 0.2
    assert (s["t"].diff().dropna() > 0.03).all()  # concurrent, but each on its own tick
    meta = availability_meta(tmp_path)
    assert meta["interval_s"] == 0.05 and meta["timeout_s"] == 0.2 and meta["samples"] == len(s)
    assert (tmp_path / AVAILABILITY).exists() and read_samples(tmp_path / AVAILABILITY, AVAILABILITY_SCHEMA)


class Fleet:
    """A duck-typed target: 2 ready replicas, then 3; the third call fails."""

    def __init__(self) -> None:
        self.calls = 0

    def replicas(self) -> dict[str, dict[str, int]]:
        self.calls += 1
        if self.calls == 3:
            raise ConnectionError("target briefly unreachable")
        ready = 1 if self.calls < 5 else 2
        return {"region-a": {"desired": 2, "ready": ready}, "region-b": {"desired": 1, "ready": 1}}


def test_replicas_sampler_records_each_region_and_rides_out_a_failing_call(tmp_path: Path) -> None:
    target = Fleet()
    with ReplicasSampler(target, tmp_path, clock=Clock(), interval=0.05) as sampler:
        time.sleep(0.4)
    r = load_replicas(tmp_path)
    assert sampler._ticks.probe_errors == 1
    assert set(r["region"]) == {"region-a", "region-b"}
    assert len(r) == 2 * (target.calls - 1)
    a = r[r["region"] == "region-a"].sort_values("t")
    assert a["ready"].tolist()[:3] == [1, 1, 1] and a["ready"].iloc[-1] == 2
    assert (tmp_path / REPLICAS).exists()


class _TwoRegions:
    def replicas(self) -> dict[str, dict[str, int]]:
        return {"region-a": {"desired": 2, "ready": 2}}


def test_a_sampler_whose_thread_dies_says_so_in_its_sidecar_and_at_stop(tmp_path: Path) -> None:
    """Issue 12, case 5: a raising flush used to end the ticking thread silently; the samples just stopped."""
    from drillbit.probes.replicas import ReplicasSampler
    from drillbit.probes.samplers import SamplerDied, read_meta

    sampler = ReplicasSampler(_TwoRegions(), tmp_path, clock=Clock(), interval=0.05)
    sampler._ticks.flush_every = 0.2

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    sampler._ticks.on_flush = full_disk
    sampler.start()
    time.sleep(0.6)
    assert sampler.died is not None and "No space left on device" in sampler.died
    with pytest.raises(SamplerDied, match="replicas sampler died"):
        sampler.stop()
    meta = read_meta(tmp_path / "samples" / "replicas.parquet")
    assert "No space left" in meta["died"] and meta["died_at"] is not None
    assert meta["sent"] <= 6  # nothing was sampled after the death (0.2 s of 0.05 s ticks, and the one at death)
