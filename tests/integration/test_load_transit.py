"""Request records sent by workers to the Locust master (remote workers), accounted for in transit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import REQUESTS_DIR, read_transit, request_parts
from drillbit.load.runner import start_load
from drillbit.probes.latency import analyze_run, latency_percentile, load_requests
from drillbit.targets.sandbox.procs import free_ports

pytestmark = pytest.mark.slow


def _profile(path: Path, rate: float, duration: float) -> Path:
    path.write_text(f"name: {path.stem}\nmodel: open\narrival: uniform\nstages:\n  - {{duration: {duration}, "
                    f"rate: {rate}}}\nmax_in_flight: 100\ntimeout_s: 5\n")  # fmt: skip
    return path


def _rows_by_worker(run_dir: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for f in request_parts(run_dir)[0]:
        w = f.name.split(".")[0]
        rows[w] = rows.get(w, 0) + pq.ParquetFile(f).metadata.num_rows
    return rows


def _drill_worker(port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "drillbit.cli", "worker", "--master", f"127.0.0.1:{port}",
                                 "--locustfile", "ping"], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def test_remote_workers_over_tcp_send_every_record_and_a_killed_one_is_unaccounted_not_undercounted(
    groundtruth: Any, tmp_path: Path
) -> None:
    """The master binds 127.0.0.1:PORT and two `drill worker` processes connect to it (the path workers on
    other machines take). One is SIGKILLed mid-run: it never says what it sent, so the run is incomplete,
    the latency untrustworthy and the latency probe refuses, while the other's records are whole: every
    row it sent, in the run directory once, and its schedule record. (Local workers sending to the master,
    `--drill-records-via master`: benchmarks.scaleout, every row received.)"""
    run_dir = tmp_path / "run"
    port = free_ports([0])[0]
    load = start_load("ping", _profile(tmp_path / "p.yaml", 200, 8), groundtruth.url, run_dir, processes=2,
                      master_bind=("127.0.0.1", port))  # fmt: skip
    workers = [_drill_worker(port, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 30
        while len(_rows_by_worker(run_dir)) < 2:  # both have sent records
            assert time.monotonic() < deadline and load.running(), (tmp_path / "run" / "locust.log").read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        victim = workers[0]
        for child in psutil.Process(victim.pid).children(recursive=True):
            child.send_signal(signal.SIGKILL)
        victim.send_signal(signal.SIGKILL)
        result = load.wait(90)
    finally:
        for w in workers:
            w.kill()
            w.wait(10)
    transit = read_transit(run_dir)
    assert transit is not None and len(transit["unaccounted_workers"]) == 1, json.dumps(transit)
    ended = {k: w for k, w in transit["workers"].items() if w["ended"]}
    ((survivor, whole),) = ended.items()
    assert whole["rows_lost"] == 0 and whole["missing_batch_count"] == 0 and whole["rows_sent"] > 500, transit
    assert _rows_by_worker(run_dir)[f"worker-{survivor}"] == whole["rows_sent"]  # every row it sent, once
    assert (run_dir / REQUESTS_DIR / f"worker-{survivor}.json").exists()  # its schedule, from its end message
    assert not result.complete and any("never said what they sent" in n for n in result.notes), result.notes
    report = analyze_run(run_dir)
    assert report.unaccounted_workers == transit["unaccounted_workers"] and not report.trustworthy
    assert len(load_requests(run_dir)) == transit["rows_received"]  # what arrived, nothing made up
    with pytest.raises(ValueError, match="lost in transit"):
        latency_percentile(str(run_dir), allow_saturated=True)  # (the dead worker's share was never sent either)
