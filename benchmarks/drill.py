"""Drill benchmarks: wall time of the default drill and the harness's own CPU while a drill runs.

    python -m benchmarks.drill [--experiment experiments/pod-kill.yaml] [--repeat 1]

Targets (issue 4): the default pod-kill drill <= 2 min wall time, sandbox start-up and tear-down
included (what `make drill` costs). Harness CPU overhead is reported: the drill process itself
(runner, samplers, chaostoolkit, analysis, report) and the Locust generator it spawns, as a
share of one core over the drill, beside the system under test's CPU.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import psutil

from drillbit.plan import load_plan
from drillbit.runner import RunOptions, run_drill
from drillbit.targets.sandbox import procs, sandbox

ROOT = Path(__file__).resolve().parents[1]
WALL_TARGET_S = 120.0


def _cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _sandbox_cpu_s(sandbox_id: str) -> float:
    total = 0.0
    for p in procs.tagged(sandbox_id):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def one_drill(experiment: Path) -> dict[str, float]:
    """`make drill` end to end (sandbox up, drill, down), then the drill alone on a running sandbox."""
    with tempfile.TemporaryDirectory(prefix="bench-drill-") as tmp:
        state, out = Path(tmp) / ".drill", Path(tmp) / "runs"
        plan = load_plan(experiment)
        started = time.monotonic()
        cold = run_drill(plan, RunOptions(state_dir=state, out=out, tty=False, say=lambda _m: None))
        wall_cold = time.monotonic() - started
        sb = sandbox.up(state_dir=state, report=lambda _m: None)
        try:
            self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            sut0 = _sandbox_cpu_s(sb.state.id)
            started = time.monotonic()
            warm = run_drill(plan, RunOptions(state_dir=state, out=out, tty=False, say=lambda _m: None))
            wall = time.monotonic() - started
            harness = _cpu_s(resource.getrusage(resource.RUSAGE_SELF)) - _cpu_s(self0)
            generator = _cpu_s(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu_s(kids0)
            sut = _sandbox_cpu_s(sb.state.id) - sut0
        finally:
            sandbox.down(state, report=lambda _m: None)
    return {"wall_cold_s": wall_cold, "exit_cold": cold.exit_code, "wall_s": wall, "exit": warm.exit_code,
            "harness_core": harness / wall, "generator_core": generator / wall, "sut_core": sut / wall}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.drill")
    ap.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "pod-kill.yaml")
    args = ap.parse_args(argv)
    r = one_drill(args.experiment)
    print(f"{args.experiment.stem}: wall time with sandbox up/down {r['wall_cold_s']:.1f} s "
          f"(target <= {WALL_TARGET_S:.0f} s: {r['wall_cold_s'] / WALL_TARGET_S:.2f} of it), exit {r['exit_cold']:.0f}")
    print(f"  on a running sandbox: {r['wall_s']:.1f} s, exit {r['exit']:.0f}")
    print(f"  CPU while it ran (share of one core): harness {r['harness_core']:.1%} "
          f"(runner, samplers, chaostoolkit, analysis, report), load generator {r['generator_core']:.1%}, "
          f"system under test {r['sut_core']:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
