"""Alert latency and the cost of monitoring: region-loss drills on a sandbox with Prometheus and
Alertmanager, each alert's latency from the fault; the monitoring's memory and CPU; the cold start
with and without it.

    python -m benchmarks.alerts [--runs 3]

Targets (issue 17): every expected alert notified < 30 s after the fault (R3.3, R10.1); the
sandbox's cold start with monitoring < 15 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from drillbit.core.results import MEASUREMENTS, Measurements, read_model
from drillbit.plan import load_plan
from drillbit.runner import RunOptions, run_drill
from drillbit.targets.sandbox import procs, sandbox
from drillbit.targets.sandbox.sandbox import Sandbox

ALERT_TARGET_S = 30.0
COLD_START_TARGET_S = 15.0
EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "region-loss.yaml"
MONITORING_UNITS = ("monitoring/prometheus", "monitoring/alertmanager", "monitoring/exporter")


def _cold_start(monitoring: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        sandbox.up(state_dir=Path(tmp) / ".drill", report=lambda _: None, monitoring=monitoring)
        took = time.monotonic() - t0
        sandbox.down(Path(tmp) / ".drill", report=lambda _: None)
    return took


def _usage(sb: Sandbox) -> dict[str, psutil.Process]:
    found = {}
    for unit in MONITORING_UNITS:
        for p in procs.tagged(sb.state.id, unit):
            found[unit.split("/")[1]] = p
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    plain, monitored = _cold_start(False), _cold_start(True)
    print(f"cold start: {plain:.1f} s without monitoring, {monitored:.1f} s with it (+{monitored - plain:.1f} s); "
          f"target < {COLD_START_TARGET_S:.0f} s: {'ok' if monitored < COLD_START_TARGET_S else 'MISSED'}")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / ".drill"
        sb = sandbox.up(state_dir=state, report=lambda _: None, monitoring=True)
        try:
            watched = _usage(sb)
            cpu0 = {k: sum(p.cpu_times()[:2]) for k, p in watched.items()}
            t0 = time.monotonic()
            latencies: dict[str, list[tuple[float, float]]] = {}
            for i in range(args.runs):
                if sb.primary() != "region-a":
                    sb.failover_db("switchover")
                    time.sleep(3)
                plan = load_plan(EXPERIMENT)
                plan = dataclasses.replace(plan, settings=plan.settings.model_copy(update={"baseline_s": 5.0,
                                                                                         "cooldown_s": 15.0}))
                result = run_drill(plan, RunOptions(state_dir=state, out=Path(tmp) / "runs", tty=False,
                                                    say=lambda _: None))  # fmt: skip
                m = read_model(result.run_dir / MEASUREMENTS, Measurements)
                alerts = m.alerts.alerts if m.alerts else []
                for a in alerts:
                    if a.fired_s is not None and a.notified_s is not None:
                        latencies.setdefault(a.name, []).append((a.fired_s, a.notified_s))
                shown = ", ".join(f"{a.name} fired {a.fired_s:.1f} s notified {a.notified_s:.1f} s" for a in alerts
                                  if a.expected and a.notified_s is not None)  # fmt: skip
                print(f"run {i + 1}: exit {result.exit_code}; {shown or 'no expected alert'}"
                      f"{'; missing ' + ', '.join(m.alerts.missing) if m.alerts and m.alerts.missing else ''}")
                if result.verdicts is not None:  # why a run did not PASS (the alert SLAs or another)
                    for v in result.verdicts.verdicts:
                        if v.verdict.value != "PASS":
                            print(f"  {v.sla}: {v.verdict.value}: {v.reason}")
                    for reason in result.verdicts.inconclusive_reasons:
                        print(f"  drill: {reason}")
            wall = time.monotonic() - t0
            for name, pairs in sorted(latencies.items()):
                notified = [n for _, n in pairs]
                print(f"{name}: fired {statistics.median(f for f, _ in pairs):.1f} s, notified median "
                      f"{statistics.median(notified):.1f} s, max {max(notified):.1f} s over {len(pairs)} run(s); "
                      f"target < {ALERT_TARGET_S:.0f} s: {'ok' if max(notified) < ALERT_TARGET_S else 'MISSED'}")
            for name, p in watched.items():
                cpu = sum(p.cpu_times()[:2]) - cpu0[name]
                print(f"{name}: RSS {p.memory_info().rss / 2**20:.0f} MiB, CPU {100 * cpu / wall:.1f} % of one core "
                      f"over {wall:.0f} s of drills")
        finally:
            sandbox.down(state, report=lambda _: None)


if __name__ == "__main__":
    main()
