"""An HPA-like autoscaler for the sandbox's API replicas, one decision per region per interval.

Kubernetes' Horizontal Pod Autoscaler rule, on CPU utilisation (percent of one core per
replica, the sandbox's "request"):

    desired = ceil(current * utilisation / target)      clamped to [min, max]

no change while utilisation / target is within the tolerance (10 %); scale-up applies at once;
scale-down applies the highest recommendation of the stabilization window (HPA's default
behaviour), so a short dip does not flap replicas. Runs as a supervised process of the sandbox
(``python -m drillbit.targets.sandbox.autoscaler --state-dir .drill``) and appends every
decision to ``logs/autoscaler.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.supervisor import Supervisor

__all__ = ["Policy", "Recommender", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target_cpu_percent: float
    scale_down_stabilization_s: float = 30.0
    tolerance: float = 0.1


@dataclass
class Recommender:
    """The pure decision: current replicas and utilisation in, desired replicas out."""

    policy: Policy
    history: deque[tuple[float, int]] = field(default_factory=deque)

    def raw(self, current: int, utilisation: float) -> int:
        p = self.policy
        ratio = utilisation / p.target_cpu_percent
        desired = current if abs(ratio - 1.0) <= p.tolerance else math.ceil(current * ratio)
        return max(p.min_replicas, min(p.max_replicas, desired))

    def decide(self, current: int, utilisation: float, now: float) -> int:
        rec = self.raw(current, utilisation)
        self.history.append((now, rec))
        window = self.policy.scale_down_stabilization_s
        while self.history and self.history[0][0] < now - window:
            self.history.popleft()
        if rec >= current:
            return rec
        return min(current, max(r for _, r in self.history))


class _CpuMeter:
    """CPU percent of one core per process, over the interval since the previous reading."""

    def __init__(self) -> None:
        self.procs: dict[int, psutil.Process] = {}

    def utilisation(self, pids: list[int]) -> float | None:
        readings = []
        for pid in pids:
            proc = self.procs.get(pid)
            try:
                if proc is None:
                    proc = self.procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # first call primes the counter
                    continue
                readings.append(proc.cpu_percent(None))
            except psutil.NoSuchProcess:
                self.procs.pop(pid, None)
        for gone in set(self.procs) - set(pids):
            del self.procs[gone]
        return sum(readings) / len(readings) if readings else None


def run(layout: Layout, regions: list[str], policy: Policy, interval: float) -> None:
    sup = Supervisor(layout.run)
    meters = {r: _CpuMeter() for r in regions}
    recs = {r: Recommender(policy) for r in regions}
    decisions = layout.logs / "autoscaler.jsonl"
    while True:
        time.sleep(interval)
        for region in regions:
            name = f"api-{region}"
            if sup.status(name) != "active":
                continue  # a lost region is not scaled
            current = sup.numprocesses(name)
            util = meters[region].utilisation(sup.pids(name))
            if util is None:
                continue
            desired = recs[region].decide(current, util, time.time())
            if desired != current:
                sup.set_numprocesses(name, desired)
                entry = {"t": time.time(), "region": region, "from": current, "to": desired, "cpu_percent": util}
                with decisions.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                log.warning(
                    "scaled %s from %d to %d replicas (cpu %.0f%% of target %.0f%%)",
                    name,
                    current,
                    desired,
                    util,
                    policy.target_cpu_percent,
                )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drillbit.targets.sandbox.autoscaler")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--regions", required=True, help="comma-separated")
    ap.add_argument("--min", type=int, required=True)
    ap.add_argument("--max", type=int, required=True)
    ap.add_argument("--target-cpu", type=float, required=True)
    ap.add_argument("--stabilization", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = Policy(args.min, args.max, args.target_cpu, args.stabilization)
    run(Layout.at(args.state_dir), args.regions.split(","), policy, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
