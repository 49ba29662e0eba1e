"""The trader locustfile under the open model against the real sandbox, through the runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbit.load.profiles import load_profile
from drillbit.load.runner import run_load
from drillbit.probes.latency import analyze_latency, load_requests
from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow


def test_steady_rate_on_two_generator_processes_meets_the_api_sla(sandbox_env: Sandbox, tmp_path: Path) -> None:
    steady = load_profile("steady")
    rate = steady.stages[0].rate
    profile = tmp_path / "steady-short.yaml"  # the default steady rate, for 15 s instead of 60
    profile.write_text(
        f"name: steady-short\nmodel: open\narrival: poisson\nstages:\n  - {{duration: 15, rate: {rate}}}\n"
    )
    run_dir = tmp_path / "run"
    result = run_load("trader", profile, sandbox_env.front_door_url, run_dir, processes=2, timeout=120)
    assert not result.saturated, result.reasons
    assert result.achieved_rps == pytest.approx(rate, rel=0.15)
    parts = sorted(p.name for p in (run_dir / "requests").glob("*.parquet"))  # worker-<n>.<part>.parquet
    assert {name.split(".")[0] for name in parts} == {"worker-0", "worker-1"}, parts
    stats = analyze_latency(load_requests(run_dir))["all"]
    assert stats.count >= 0.8 * 15 * rate
    assert stats.error_rate < 0.01
    assert stats.p95_ms is not None and stats.p95_ms < 100, stats  # seed E12000: API p95 < 100 ms
    print(f"steady {rate} req/s on the sandbox: p50 {stats.p50_ms:.1f} ms, p95 {stats.p95_ms:.1f} ms, "
          f"p99 {stats.p99_ms:.1f} ms, errors {stats.error_rate:.2%}")  # fmt: skip
