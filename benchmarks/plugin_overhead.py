"""What drillbit's pytest plugin adds over ``drill run`` for one drill (target: under 1 s).

    python -m benchmarks.plugin_overhead [--rounds 5]

The drill itself is the same either way (``run_drill``), so the figure is everything around it: a
new project (``drill init``) with one ``@pytest.mark.drill`` gate, timed as ``pytest
--collect-only`` (pytest's start-up, the plugin's options, the experiment's plan and SLA file read
to make one test per SLA) against ``drill run --dry-run`` on the same experiment (the CLI's start-up
and the same validation). The judging after the drill (verdicts to test outcomes, JUnit
properties) reads one small JSON file and is timed in-process. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drillbit.core.project import init_project

TARGET_S = 1.0
GATE = '''import pytest


@pytest.mark.drill(experiment="pod-kill.yaml")
def test_pod_kill():
    """one test per SLA"""
'''


def _timed(cmd: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "DRILL_PROJECT"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.plugin_overhead")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        init_project(project)
        (project / "tests" / "test_gate.py").write_text(GATE)
        drill = str(Path(sys.executable).with_name("drill"))
        pytest_cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                      "tests/test_gate.py"]  # fmt: skip
        cli_cmd = [drill, "run", "experiments/pod-kill.yaml", "--dry-run"]
        _timed(pytest_cmd, project), _timed(cli_cmd, project)  # warm the file cache
        plugin = [_timed(pytest_cmd, project) for _ in range(args.rounds)]
        cli = [_timed(cli_cmd, project) for _ in range(args.rounds)]
    p, c = statistics.median(plugin), statistics.median(cli)
    print(f"pytest --collect-only (plugin, one gate of 9 SLAs): median {p:.2f} s (min {min(plugin):.2f})")
    print(f"drill run --dry-run (the CLI, same experiment):    median {c:.2f} s (min {min(cli):.2f})")
    added = p - c
    print(f"added by the plugin over drill run: {added:+.2f} s (target < {TARGET_S:g} s): "
          f"{'OK' if added < TARGET_S else 'OVER'}")  # fmt: skip


if __name__ == "__main__":
    main()
