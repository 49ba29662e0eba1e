"""Calibration: drillbit measures outages it scripted itself and compares with the truth.

Used by the ground-truth tests and by ``benchmarks.accuracy``; the same code can prove, on any
machine, that the RTO drillbit reports there is within its stated bound.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from drillbit.core.clock import Clock
from drillbit.probes.availability import AvailabilitySampler, RtoResult, analyze_rto, load_availability

__all__ = ["GroundTruth", "groundtruth_server", "measure_rto"]


@dataclass
class GroundTruth:
    """A running drillbit.testing.groundtruth server: outages of exactly known start and length."""

    proc: subprocess.Popen[bytes]
    url: str

    def quiet_at(self) -> float:
        """When the last outage scheduled so far ends (epoch seconds; 0 when none was)."""
        r = httpx.get(f"{self.url}/_control/outages")
        r.raise_for_status()
        return max((float(o["end"]) for o in r.json()), default=0.0)

    def wait_quiet(self) -> None:
        """Wait until no outage is active or scheduled (one a previous user left running)."""
        time.sleep(max(0.0, self.quiet_at() - time.time()))

    def outage(self, kind: str, duration: float, start_in: float = 0.0) -> tuple[float, float]:
        r = httpx.post(f"{self.url}/_control/outage", json={"kind": kind, "duration": duration, "start_in": start_in})
        r.raise_for_status()
        truth = r.json()
        return float(truth["start"]), float(truth["end"])


@contextlib.contextmanager
def groundtruth_server(service_time: float = 0.0, capacity: float | None = None) -> Iterator[GroundTruth]:
    with tempfile.TemporaryDirectory(prefix="drillbit-groundtruth-") as tmp:
        port_file = Path(tmp) / "port"
        cmd = [sys.executable, "-m", "drillbit.testing.groundtruth", "--port-file", str(port_file),
               "--service-time", str(service_time), *(["--capacity", str(capacity)] if capacity else [])]  # fmt: skip
        proc = subprocess.Popen(cmd)
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the groundtruth server did not start")
                time.sleep(0.05)
            yield GroundTruth(proc, f"http://127.0.0.1:{port_file.read_text()}")
        finally:
            proc.terminate()
            proc.wait(10)


def measure_rto(
    server: GroundTruth,
    run_dir: Path,
    kind: str,
    duration: float,
    *,
    stability_window: float = 1.0,
    interval: float = 0.1,
    slow_after: float | None = None,
) -> tuple[RtoResult, float]:
    """Sample the server through one scripted outage; return (what drillbit measured, the truth)."""
    with AvailabilitySampler(f"{server.url}/probe", run_dir, clock=Clock(), interval=interval, timeout=1.0):
        time.sleep(0.5 + random.random() * interval)  # a random phase against the probe ticks
        start, end = server.outage(kind, duration)
        time.sleep(duration + stability_window + 0.6)
    result = analyze_rto(load_availability(run_dir), start, stability_window=stability_window, slow_after=slow_after)
    return result, end - start
