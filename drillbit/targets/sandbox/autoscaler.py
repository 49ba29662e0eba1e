"""An HPA-like autoscaler for the sandbox's API replicas, one decision per region per interval.

Kubernetes' Horizontal Pod Autoscaler rule, on one metric averaged over a region's replicas:

    desired = ceil(current * metric / target)      clamped to [min, max]

The metric is ``rps`` (requests per second per replica, from each replica's own Prometheus
counter, as an HPA on a custom metric through the Prometheus adapter; the default: it does not
depend on what else runs on the machine) or ``cpu`` (percent of one core per replica).

no change while utilisation / target is within the tolerance (10 %); scale-up applies at once;
scale-down applies the highest recommendation of the stabilization window (HPA's default
behaviour), so a short dip does not flap replicas. Runs as a supervised process of the sandbox
(``python -m drillbit.targets.sandbox.autoscaler --state-dir .drill``) and appends every
decision to ``logs/autoscaler.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from drillbit.targets.sandbox import loopback
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.supervisor import Supervisor

__all__ = ["CORDONED", "PAUSED", "Policy", "Recommender", "cordoned", "is_paused", "main", "paused", "write_cordoned"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target: float  # per replica: requests/s (metric rps) or percent of one core (metric cpu)
    scale_down_stabilization_s: float = 30.0
    tolerance: float = 0.1


@dataclass
class Recommender:
    """The pure decision: current replicas and utilisation in, desired replicas out."""

    policy: Policy
    history: deque[tuple[float, int]] = field(default_factory=deque)

    def raw(self, current: int, utilisation: float) -> int:
        p = self.policy
        ratio = utilisation / p.target
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


class _RateMeter:
    """Requests per second per replica, from the replicas' request counters (over their own sockets)."""

    COUNTER = "sut_http_request_duration_seconds"
    IGNORED = frozenset({"/metrics", "/healthz", "/readyz"})  # the harness's own probes are not load

    WINDOW_S = 5.0  # the rate is taken over this long (as an HPA reads rate() over a window), not one tick

    def __init__(self, layout: Layout, region: str) -> None:
        self.layout, self.region = layout, region
        self.served = 0.0  # requests served by the region's replicas since the meter started
        self.previous: dict[str, float] = {}
        self.history: deque[tuple[float, float]] = deque()
        self.clients: dict[Path, httpx.Client] = {}  # one per replica socket, kept across readings

    def _count(self, sock: Path) -> float | None:
        client = self.clients.get(sock) or self.clients.setdefault(sock, loopback.client(uds=sock, timeout=0.5))
        try:
            text = client.get("http://replica/metrics").text
        except httpx.HTTPError:
            return None  # a dead or starting replica
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == self.COUNTER
            for sample in family.samples
            if sample.name == self.COUNTER + "_count" and sample.labels.get("route") not in self.IGNORED
        )

    def utilisation(self, replicas: int) -> float | None:
        """Requests/s per replica over the window; ``replicas``: how many the supervisor runs (desired:
        a replica killed a moment ago is being replaced, and does not double the others' share)."""
        now = time.monotonic()
        sockets = set(self.layout.run.glob(f"api-{self.region}-*.sock"))
        for gone in set(self.clients) - sockets:
            self.clients.pop(gone).close()
        counts = {s.name: c for s in sorted(sockets) if (c := self._count(s)) is not None}
        # a respawned replica's counter starts again from zero: count it from zero
        self.served += sum(c - self.previous.get(k, 0.0) if c >= self.previous.get(k, 0.0) else c
                           for k, c in counts.items())  # fmt: skip
        # a replica that missed one reading keeps its last count (it would otherwise count from zero)
        self.previous = {**{k: v for k, v in self.previous.items() if k in {s.name for s in sockets}}, **counts}
        self.history.append((now, self.served))
        while len(self.history) > 2 and self.history[1][0] <= now - self.WINDOW_S:
            self.history.popleft()
        (t0, s0), (t1, s1) = self.history[0], self.history[-1]
        if t1 - t0 < self.WINDOW_S / 2 or replicas < 1:
            return None
        return (s1 - s0) / (t1 - t0) / replicas


CORDONED = "cordoned.json"  # under the sandbox's root: regions the autoscaler must not scale


def write_cordoned(layout: Layout, regions: list[str]) -> None:
    """Publish the regions whose nodes are cordoned (atomically: the autoscaler reads it every tick)."""
    tmp = layout.root / f".{CORDONED}.tmp"
    tmp.write_text(json.dumps(regions))
    os.replace(tmp, layout.root / CORDONED)


PAUSED = "autoscaler-paused"  # under the sandbox's root, holding a pid: a rolling update runs


@contextlib.contextmanager
def paused(layout: Layout) -> Iterator[None]:
    """The autoscaler leaves replica counts alone for the block: a rolling update's surge replicas
    are not load to scale in (a Kubernetes HPA does not count a rollout's surge pods either)."""
    path = layout.root / PAUSED
    path.write_text(str(os.getpid()))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def is_paused(layout: Layout) -> bool:
    """Paused by a live process (a roll that died with its process pauses nothing)."""
    try:
        pid = int((layout.root / PAUSED).read_text())
    except (OSError, ValueError):
        return False
    return psutil.pid_exists(pid)


def cordoned(layout: Layout) -> set[str]:
    try:
        return {str(r) for r in json.loads((layout.root / CORDONED).read_text())}
    except (OSError, ValueError, TypeError):
        return set()


def run(layout: Layout, regions: list[str], policy: Policy, interval: float, metric: str = "rps") -> None:
    sup = Supervisor(layout.run)
    # requests/s: every region's replicas serve one front door (one Service), so the rate per
    # replica is the service's rate over all live replicas (the kernel spreads connections over
    # processes unevenly; a per-region rate would scale a region on that noise); CPU: per region
    service_rate = _RateMeter(layout, "*")
    cpu = {r: _CpuMeter() for r in regions}
    recs = {r: Recommender(policy) for r in regions}
    decisions = layout.logs / "autoscaler.jsonl"
    while True:
        time.sleep(interval)
        if is_paused(layout):
            continue
        skip = cordoned(layout)  # a region whose nodes take no pod (a zone drained through a Kubernetes API)
        live = [r for r in regions if sup.status(f"api-{r}") == "active" and r not in skip]  # nor a lost one
        rate = service_rate.utilisation(sum(sup.numprocesses(f"api-{r}") for r in live)) if metric == "rps" else None
        for region in live:
            name = f"api-{region}"
            current = sup.numprocesses(name)
            util = rate if metric == "rps" else cpu[region].utilisation(sup.pids(name))
            if util is None:
                continue
            desired = recs[region].decide(current, util, time.time())
            if desired != current:
                sup.set_numprocesses(name, desired)
                entry = {"t": time.time(), "region": region, "from": current, "to": desired, "metric": metric,
                         "value": round(util, 3), "target": policy.target}
                with decisions.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                log.warning("scaled %s from %d to %d replicas (%s %.1f, target %.1f)", name, current, desired,
                            metric, util, policy.target)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drillbit.targets.sandbox.autoscaler")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--regions", required=True, help="comma-separated")
    ap.add_argument("--min", type=int, required=True)
    ap.add_argument("--max", type=int, required=True)
    ap.add_argument("--metric", choices=("rps", "cpu"), default="rps")
    ap.add_argument("--target", type=float, required=True, help="per replica: requests/s (rps) or % of a core (cpu)")
    ap.add_argument("--stabilization", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = Policy(args.min, args.max, args.target, args.stabilization)
    run(Layout.at(args.state_dir), args.regions.split(","), policy, args.interval, args.metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
