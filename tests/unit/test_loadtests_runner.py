"""The runner's saturation judgement on run directories written here, and its isolation from Locust."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drillbit.core.errors import ConfigError
from drillbit.core.rundir import LOAD_META
from drillbit.load.cpu import CpuSample, CpuSampler, busiest
from drillbit.load.profiles import Profile, load_profile
from drillbit.load.recording import RequestSink, ScheduleStats
from drillbit.load.runner import start_load, summarize, write_load_meta

T0 = 1_800_000_000.0


def _cpu(cpu: list[float], busy: list[float] | None = None, start: float = T0) -> list[CpuSample]:
    """One sample a second from ``start``: the first ends at start + 1."""
    busy = busy or cpu
    return [CpuSample(start + 1 + i, c, b, 1.0) for i, (c, b) in enumerate(zip(cpu, busy, strict=True))]


def _profile(tmp_path: Path, rate: float = 100, duration: float = 10, model: str = "open") -> Profile:
    path = tmp_path / "p.yaml"
    stage = f"rate: {rate}" if model == "open" else "users: 5"
    path.write_text(f"name: t\nmodel: {model}\nstages:\n  - {{duration: {duration}, {stage}}}\n")
    return load_profile(path)


def _run(tmp_path: Path, *, rate: float = 100, duration: float = 10, sent_fraction: float = 1.0,
         late_s: float = 0.0005, cap_wait_s: float = 0.0, workers: int = 1) -> Path:  # fmt: skip
    """A run dir as the recorder leaves it: ``workers`` processes sharing ``rate`` for ``duration``."""
    run = tmp_path / "run"
    for w in range(workers):
        n = int(rate * duration / workers)
        sent = int(n * sent_fraction)
        sink = RequestSink(run, w)
        stats = ScheduleStats(worker=w, share=1 / workers, t0=T0, t_end=T0 + duration, sent=sent)
        stats.cap_wait_s = cap_wait_s
        stats.capped = 10 if cap_wait_s else 0
        for i in range(n):
            intended = T0 + i * workers / rate
            if i < sent:
                sink.add("GET /ping", intended, intended + late_s, 0.002, 200, None)
                stats.add_lateness(late_s)
            else:
                sink.add("(not sent)", intended, np.nan, np.nan, 0, "not_sent")
                stats.not_sent += 1
        sink.close()
        stats.write(run)
    return run


def test_a_generator_that_kept_up_is_not_saturated(tmp_path: Path) -> None:
    start_up = _cpu([100.0, 99.0], start=T0 - 2)  # importing Locust, before the schedule started
    cpu = {1: start_up + _cpu([30.0, 31.0, 30.0]), 2: _cpu([20.0] * 9)}
    r = summarize(_run(tmp_path, workers=2), _profile(tmp_path), processes=2, cpu=cpu)
    assert not r.saturated and r.reason is None and r.complete
    assert r.due == r.sent == r.recorded == 1000
    assert r.intended_rps == pytest.approx(100) and r.achieved_rps == pytest.approx(100)
    assert r.generator_lateness_p99_ms == pytest.approx(0.5)  # the bucket's upper edge
    assert r.cpu_percent_busiest == pytest.approx(30)  # start-up samples (imports) left out
    assert r.cpu_samples["1"][0] == [T0 - 1, 100.0, 100.0]


def test_a_generator_sending_late_for_its_own_reasons_is_saturated(tmp_path: Path) -> None:
    r = summarize(_run(tmp_path, late_s=0.3), _profile(tmp_path), late_after=0.05)
    assert r.saturated
    assert r.reason is not None and "generator lateness: p99 200-500 ms behind schedule" in r.reason


def test_an_unreached_rate_without_backpressure_is_saturation(tmp_path: Path) -> None:
    r = summarize(_run(tmp_path, sent_fraction=0.8), _profile(tmp_path))
    assert r.saturated and any("intended rate not reached: sent 800 of 1000" in x for x in r.reasons)
    assert r.not_sent == 200 and r.recorded == 1000
    assert r.achieved_rps == pytest.approx(80) and r.intended_rps == pytest.approx(100)


def test_an_unreached_rate_the_server_held_back_is_backpressure_not_saturation(tmp_path: Path) -> None:
    r = summarize(_run(tmp_path, sent_fraction=0.8, cap_wait_s=3.0), _profile(tmp_path))
    assert not r.saturated, r.reasons
    assert any("backpressure" in n for n in r.notes) and any("in-flight cap" in n for n in r.notes)


def test_a_cpu_bound_generator_is_saturated(tmp_path: Path) -> None:
    cpu = {1: _cpu([50.0, 50.0, 97.0, 99.0, 98.0]), 2: _cpu([10.0] * 5)}
    r = summarize(_run(tmp_path), _profile(tmp_path), cpu=cpu)
    assert r.saturated and "CPU-bound" in (r.reason or "") and r.cpu_percent_busiest == 97.0


def test_a_generator_squeezed_off_its_cpu_is_saturated_though_its_own_cpu_is_low(tmp_path: Path) -> None:
    cpu = {1: _cpu([55.0] * 8, busy=[97.0] * 8)}  # runnable 97 % of the time, on a CPU only 55 %
    r = summarize(_run(tmp_path), _profile(tmp_path), cpu=cpu)
    assert r.saturated and r.busy_percent_busiest == 97.0 and r.cpu_percent_busiest == 55.0
    assert "busy 97 % of the time" in (r.reason or "")


def test_a_full_cap_with_a_busy_generator_is_not_excused_as_backpressure(tmp_path: Path) -> None:
    cpu = {1: _cpu([95.0] * 8)}
    r = summarize(_run(tmp_path, sent_fraction=0.8, cap_wait_s=3.0), _profile(tmp_path), cpu=cpu)
    assert r.saturated and any("intended rate not reached" in x for x in r.reasons)


def test_busiest_uses_the_samples_inside_the_window() -> None:
    samples = {7: _cpu([100.0, 100.0], start=T0 - 2) + _cpu([10.0, 20.0, 30.0])}
    assert busiest(samples, (T0, T0 + 3)) == (20.0, 20.0)
    assert busiest(samples, None) == (30.0, 30.0)
    assert busiest({}, None) == (0.0, 0.0)


def test_the_cpu_sampler_measures_a_busy_process() -> None:
    """A process that spins for 0.2 s of CPU: its CPU share is what it used over the sample's wall
    interval (100 % on an idle machine, less on a busy one, where it also waits for a CPU), and
    its busy share counts that wait too: a spinning process is runnable all the time."""
    sampler = CpuSampler(os.getpid(), time.time, interval=60)
    sampler.sample()  # primes
    c0 = time.process_time()
    until = c0 + 0.2
    while time.process_time() < until:
        pass
    used = time.process_time() - c0
    sampler.sample()
    (series,) = [v for k, v in sampler.samples.items() if k == os.getpid()]
    sample = series[0]
    assert sample.cpu_percent == pytest.approx(100 * used / sample.interval, abs=8), sample
    assert sample.busy_percent > 80 and sample.busy_percent >= sample.cpu_percent - 1, sample
    assert os.getpid() in {p.pid for p in sampler.members()}


def test_a_generator_process_that_left_no_record_makes_the_run_incomplete(tmp_path: Path) -> None:
    r = summarize(_run(tmp_path), _profile(tmp_path), processes=2)
    assert not r.complete and any("1 of 2 generator processes left no schedule record" in n for n in r.notes)


def test_a_file_left_without_its_footer_makes_the_run_incomplete_not_a_crash(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run / "requests" / "worker-1.parquet").write_bytes(b"PAR1 torn")
    r = summarize(run, _profile(tmp_path))
    assert not r.complete and r.recorded == 1000 and any("worker-1.parquet is unreadable" in n for n in r.notes)


def test_the_closed_model_reports_the_achieved_rate(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sink = RequestSink(run, 0)
    for i in range(501):
        sink.add("GET /ping", np.nan, T0 + i / 50, 0.01, 200, None)
    sink.close()
    r = summarize(run, _profile(tmp_path, model="closed"))
    assert r.model == "closed" and r.intended_rps is None and r.expected is None
    assert r.achieved_rps == pytest.approx(50.1) and not r.saturated


def test_load_json_is_strict_json(tmp_path: Path) -> None:
    r = summarize(_run(tmp_path), _profile(tmp_path), started_at=T0, ended_at=T0 + 11)
    meta = json.loads(write_load_meta(tmp_path, r).read_text())
    assert (tmp_path / LOAD_META).exists()
    assert meta["saturated"] is False and meta["intended_rps"] == pytest.approx(100)
    assert {"intended_rps", "achieved_rps", "cpu_samples", "saturated", "reason"} <= set(meta)


def test_start_load_refuses_bad_input_before_starting_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such locustfile: use one of .*trader"):
        start_load("nonesuch", "steady", "http://127.0.0.1:1", tmp_path)
    with pytest.raises(ConfigError, match="not an http"):
        start_load("ping", "steady", "127.0.0.1:8080", tmp_path)
    with pytest.raises(ConfigError, match="no such profile"):
        start_load("ping", "nonesuch", "http://127.0.0.1:1", tmp_path)
    assert not (tmp_path / "locust.log").exists()


def test_the_engine_side_never_imports_locust_or_gevent() -> None:
    """Locust's gevent monkey-patching must never reach the engine (pytest runs with -p no:locust)."""
    import drillbit.load.cpu
    import drillbit.load.profiles
    import drillbit.load.recording
    import drillbit.load.runner
    import drillbit.probes.latency

    assert drillbit.load.runner.start_load and drillbit.load.cpu and drillbit.load.recording and drillbit.load.profiles
    assert drillbit.probes.latency.analyze_run
    assert sorted({m.split(".")[0] for m in sys.modules} & {"locust", "gevent", "greenlet"}) == []
