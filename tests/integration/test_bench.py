"""``drill bench`` against ground truth: a server of known capacity (``drillbit.testing.groundtruth
--capacity N``: one queue served at exactly N requests a second). The knee it finds must be within
one step of N, the step above N must break, and the search must stop there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drillbit.cli import main
from drillbit.testing.calibration import groundtruth_server

pytestmark = pytest.mark.slow

CAPACITY = 200.0
STEP = 40.0
RATES = [120.0, 160.0, 240.0, 280.0]  # straddling the capacity, never on it (a queue at exactly N drifts)


def test_drill_bench_finds_the_knee_of_a_server_of_known_capacity_within_one_step(tmp_path: Path) -> None:
    profile = tmp_path / "steps.yaml"
    stages = "".join(f"  - {{duration: 4, rate: {r:g}}}\n" for r in RATES)
    profile.write_text(f"name: steps\nmodel: open\narrival: uniform\nstages:\n{stages}max_in_flight: 2000\n"
                       "timeout_s: 10\n")  # fmt: skip
    sla = tmp_path / "slas.yaml"
    sla.write_text("slas:\n  p95: {metric: p95_ms, op: '<', target: 100, requirement: E12000, text: p95}\n"
                   "  error_rate: {metric: error_rate_percent, op: '<=', target: 0.1, requirement: E12000, "
                   "text: errors}\ndefault: [p95, error_rate]\n")  # fmt: skip
    out = tmp_path / "runs"
    with groundtruth_server(capacity=CAPACITY) as server:
        code = main(["bench", "--url", server.url, "--profile", str(profile), "--sla", str(sla), "--out", str(out)])
    assert code == 0
    (run,) = out.iterdir()
    b = json.loads((run / "bench.json").read_text())
    steps = b["steps"]
    print("bench: " + ", ".join(f"{s['rate']:g} req/s p95 {s['figures']['all']['p95_ms']:.1f} ms" for s in steps))
    assert b["knee_rps"] is not None and abs(b["knee_rps"] - CAPACITY) <= STEP, b["knee_rps"]
    assert b["knee_rps"] <= CAPACITY < b["knee_upper_rps"] and b["bound_rps"] == b["knee_upper_rps"] - b["knee_rps"]
    assert b["stopped_because"] == "sla" and steps[-1]["rate"] == 240  # stopped at the first step above capacity
    assert [s["attempt"] for s in steps][-2:] == [1, 2] and not steps[-2]["held"]  # broke twice: not a hiccup
    assert not steps[-1]["held"] and steps[-1]["breaches"], steps[-1]
    held = [s for s in steps if s["held"]]
    assert steps[-1]["figures"]["all"]["p95_ms"] > 100 > max(s["figures"]["all"]["p95_ms"] for s in held)
    assert (run / "bench.html").read_text().count("<tr>") >= 4
