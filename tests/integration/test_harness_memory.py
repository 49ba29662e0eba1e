"""The harness's memory and CPU, sampled for real: a leaking process's slope against its known rate, and a
remote `drill worker`'s own figures reaching the master over Locust's messages."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import HARNESS, HARNESS_REMOTE, read_transit
from drillbit.load.cpu import CpuSampler, harness_table
from drillbit.load.runner import start_load, write_harness
from drillbit.probes.drift import MB, analyze_drift
from drillbit.targets.sandbox.procs import free_ports

pytestmark = pytest.mark.slow

#: the leaking child: 1,000,000 bytes (written, so resident) every STEP_S on an absolute schedule
CHUNK = 1_000_000
STEP_S = 0.25
LEAK = f"""
import sys, time
held = []
print("ready", flush=True)
t0 = time.monotonic()
for k in range(400):
    time.sleep(max(0.0, t0 + k * {STEP_S} - time.monotonic()))
    held.append(b"x" * {CHUNK})
time.sleep(3600)
"""


def test_a_leaking_process_sampled_by_the_harness_sampler_shows_its_true_slope(tmp_path: Path) -> None:
    """A child allocating 1 MB every 0.25 s grows 240 MB/min (plus a page's rounding per chunk): the
    sampler's samples, through the drift analysis, give that slope within 5 %."""
    truth_mb_per_min = CHUNK / MB / STEP_S * 60
    child = subprocess.Popen([sys.executable, "-c", LEAK], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        sampler = CpuSampler(child.pid, time.time, interval=0.5, descendants=False).start()
        time.sleep(15)
        sampler.stop()
    finally:
        child.kill()
        child.wait(10)
    write_harness(tmp_path, harness_table(sampler, lambda _pid: "worker", socket.gethostname()))
    m = analyze_drift(tmp_path)
    (proc,) = m.processes
    assert proc.pid == child.pid and proc.samples >= 20, proc
    assert proc.slope_mb_per_min == pytest.approx(truth_mb_per_min, rel=0.05), proc
    assert proc.r2 is not None and proc.r2 > 0.98, proc
    assert m.too_short is not None  # 15 s: measured, never judged


def _profile(path: Path, rate: float, duration: float) -> Path:
    path.write_text(f"name: {path.stem}\nmodel: open\narrival: uniform\nstages:\n  - {{duration: {duration}, "
                    f"rate: {rate}}}\nmax_in_flight: 100\ntimeout_s: 5\n")  # fmt: skip
    return path


def test_a_remote_worker_s_own_memory_and_cpu_reach_the_master_and_count(groundtruth: Any, tmp_path: Path) -> None:
    """The master binds 127.0.0.1:PORT and a `drill worker` connects (the path a worker on another
    machine takes). The drill cannot psutil it (it is no child of the master), so its figures are the
    ones it sent with its record batches: in samples/harness_remote.parquet, marked remote, with its
    Locust process's pid and CPU shares; the saturation judgement and the drift analysis both see it."""
    run_dir = tmp_path / "run"
    port = free_ports([0])[0]
    load = start_load("ping", _profile(tmp_path / "p.yaml", 100, 8), groundtruth.url, run_dir, processes=1,
                      master_bind=("127.0.0.1", port))  # fmt: skip
    with open(tmp_path / "worker.log", "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "drillbit.cli", "worker", "--master", f"127.0.0.1:{port}",
                                   "--locustfile", "ping"], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        result = load.wait(90)
    finally:
        worker.wait(30)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
    remote = pq.read_table(run_dir / HARNESS_REMOTE).to_pylist()
    local = pq.read_table(run_dir / HARNESS).to_pylist()
    pids = {r["pid"] for r in remote}
    assert len(pids) == 1 and all(r["remote"] and r["role"] == "worker" for r in remote), remote[:3]
    (pid,) = pids
    assert pid not in {r["pid"] for r in local}  # the drill could not sample it itself
    assert {r["role"] for r in local} == {"drill", "master"}
    assert len(remote) >= 5 and all(r["rss_bytes"] > 20 * MB for r in remote)
    # a share per interval of at least MIN_CPU_INTERVAL_S: every flush's (a second apart), not the first's nor
    # the end message's (milliseconds after the last flush)
    shares = [r["cpu_percent"] for r in remote]
    finite = [c for c in shares if math.isfinite(c)]
    assert len(finite) >= len(shares) - 2 and all(0 <= c <= 200 for c in finite) and max(finite) > 0, shares
    account = read_transit(run_dir)
    assert account is not None and account["rows_lost"] == 0
    (w,) = account["workers"].values()
    # one figure per message (a flush each second and the end message), none refused
    assert w["unreadable_process_samples"] == 0 and w["process_samples"] >= len(remote) >= w["batches_received"]
    judged = [k for k in result.cpu_samples if k.startswith("remote worker")]
    assert judged == [f"remote worker {remote[0]['worker']} (pid {pid} on {remote[0]['host']})"], result.cpu_samples
    m = analyze_drift(run_dir)
    assert any(p.remote and p.pid == pid for p in m.processes), [p.name for p in m.processes]
