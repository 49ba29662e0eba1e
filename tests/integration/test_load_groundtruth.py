"""The load layer against ground truth: a 2 s freeze under the open model, and a saturated generator.

Locust runs as a real subprocess through loadtests.runner; the server is drillbit.groundtruth.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtests.runner import run_load, start_load
from probes.latency import analyze_latency, load_requests

pytestmark = pytest.mark.slow

FREEZE = 2.0


def _profile(path: Path, rate: float, duration: float, max_in_flight: int = 10) -> Path:
    path.write_text(
        f"name: test\nmodel: open\narrival: uniform\nstages:\n  - {{duration: {duration}, rate: {rate}}}\n"
        f"max_in_flight: {max_in_flight}\ntimeout_s: 5\n"
    )
    return path


def test_a_two_second_freeze_shows_in_corrected_p99_within_ten_percent(groundtruth: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    load = start_load("ping", _profile(tmp_path / "p.yaml", 200, 8), groundtruth.url, run_dir)
    time.sleep(3.5)  # Locust starts (~1 s) and runs its schedule for a while before the freeze
    start, end = groundtruth.outage("freeze", FREEZE)
    result = load.wait(60)
    assert not result.saturated, result.reasons
    reqs = load_requests(run_dir)
    stats = analyze_latency(reqs)["all"]

    # what the freeze implies: a request intended during it is answered when it ends
    base = float(np.median(reqs.latency[(reqs.intended < start - 0.5) | (reqs.intended > end + 0.5)]))
    implied = np.where((reqs.intended >= start) & (reqs.intended < end), end - reqs.intended, 0.0) + base
    implied_p99_ms = float(np.percentile(implied, 99)) * 1000
    assert stats.p99_ms == pytest.approx(implied_p99_ms, rel=0.10), (stats.p99_ms, implied_p99_ms)
    assert stats.p99_ms > 1500
    # the uncorrected figure, from the actual send, hides the stall: most frozen requests left late
    assert stats.uncorrected_p99_ms is not None and stats.uncorrected_p99_ms < 0.5 * stats.p99_ms
    print(f"corrected p99 {stats.p99_ms:.0f} ms, implied {implied_p99_ms:.0f} ms, "
          f"uncorrected p99 {stats.uncorrected_p99_ms:.0f} ms")  # fmt: skip


def test_a_saturated_generator_is_flagged_not_reported_as_server_latency(groundtruth: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_load("ping", _profile(tmp_path / "p.yaml", 20000, 3, max_in_flight=1000), groundtruth.url, run_dir,
                      timeout=60)  # fmt: skip
    assert result.saturated is True
    assert any("intended rate not reached" in r for r in result.reasons), result.reasons
    assert result.achieved_rps < 0.95 * 20000
    assert (run_dir / "load.json").exists()


def test_the_engine_never_imports_locust() -> None:
    import subprocess

    code = "import loadtests.runner, loadtests.profiles, probes.latency, sys; " \
           "print(any(m.split('.')[0] in ('locust', 'gevent') for m in sys.modules))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
