"""Watch latency of the Kubernetes samplers: a change in the cluster -> its record written by drillbit.

    python -m benchmarks.kube_watch_latency [--changes 200] [--interval 0.02]

The fake Kubernetes API (drillbit.testing.kubeapi, real HTTP on loopback, the drill runner's RBAC
Role) and one ``ClusterWatch`` (drillbit.targets.kubewatch) watching it. The changes are written
into the fake's store one every ``--interval`` s, in turn: a pod's Ready condition flipped (-> a
replica row), an Event with a recorded reason created (-> a ``k8s.event`` line in events.jsonl), the
HPA's desired replicas changed (-> a ``k8s.hpa`` line). A change's time is when it landed in the
store (a store listener, under the store's lock); its record's is the ``t`` drillbit gave it when it
received the change, on the same clock. Every change must have exactly its record; the figures are
median, p95 and max per kind and overall, and the CPU this process used per change (the fake
server runs in this process too: an upper bound).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from kubernetes import config

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog, read_events
from drillbit.core.rundir import EVENTS
from drillbit.targets.kubewatch import ClusterWatch, is_ready
from drillbit.testing.kubeapi import FakeKubeAPI, Policy, Query, Store, WatchEvent
from drillbit.testing.kubeapi.resources import find
from drillbit.testing.kubeapi.sim import PODS, Simulator

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
RBAC = ROOT / "infra" / "k8s" / "base" / "drill-runner-rbac.yaml"
NS, CONTEXT, ZONE = "trading", "bench", "topology.kubernetes.io/zone"
LABELS = {"app.kubernetes.io/name": "trading-api"}
EVENTS_V1 = find("", "v1", "events")
HPAS = find("autoscaling", "v2", "horizontalpodautoscalers")
REASONS = ("OOMKilled", "FailedScheduling", "Unhealthy", "BackOff", "Killing", "Evicted")


class _Rows:
    """The replica rows as a ParquetSink takes them (it journals them to disk every 2 s), each with
    the time it was handed over (``written``)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.rows.append({**row, "written": self.clock.now()})

    def ready_at(self) -> list[tuple[float, float, set[str]]]:
        """(t, written, the ready pods' names) per row time, in time order."""
        out: dict[float, tuple[float, set[str]]] = {}
        for r in self.rows:
            written, ready = out.setdefault(r["t"], (r["written"], set()))
            out[r["t"]] = (max(written, r["written"]), ready | set(r["ready_ids"]))
        return sorted((t, w, ready) for t, (w, ready) in out.items())


class _Lines:
    """events.jsonl's writer, noting when each line was written (flushed) as ``written``."""

    def __init__(self, log: EventLog, clock: Clock) -> None:
        self.log, self.clock = log, clock
        self.lines: list[dict[str, Any]] = []

    def emit(self, kind: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
        event = self.log.emit(kind, t, **fields)
        self.lines.append({**event, "written": self.clock.now()})
        return event


def _cluster() -> tuple[FakeKubeAPI, Simulator]:
    assert EVENTS_V1 is not None and HPAS is not None
    api = FakeKubeAPI(store=Store(), policy=Policy.from_file(RBAC))
    sim = Simulator(api.store)
    api.backend = sim
    for node, zone in (("node-a1", "zone-a"), ("node-b1", "zone-b")):
        sim.add_node(node, {ZONE: zone})
    sim.add_deployment(NS, "trading-api", replicas=4, labels=LABELS)
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "trading-api"}
    spec = {"scaleTargetRef": target, "minReplicas": 4, "maxReplicas": 8}
    status = {"currentReplicas": 4, "desiredReplicas": 4}
    api.store.create(HPAS, {"metadata": {"name": "trading-api"}, "spec": spec, "status": status}, namespace=NS)
    return api, sim


def _set_ready(pod: dict[str, Any], ready: bool) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {**pod, "status": {**pod["status"], "conditions": conditions}}


def _change(store: Store, i: int, pod: str) -> None:
    """The i-th change: a readiness flip, an Event, or the HPA's desired replicas, in turn."""
    assert EVENTS_V1 is not None and HPAS is not None
    kind = i % 3
    if kind == 0:
        store.update(PODS, NS, pod, lambda p: _set_ready(p, not is_ready(p)))
    elif kind == 1:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        store.create(EVENTS_V1, {"metadata": {"name": f"bench.{i}"}, "reason": REASONS[i % len(REASONS)],
                                 "involvedObject": {"kind": "Pod", "name": pod}, "count": 1, "lastTimestamp": now},
                     namespace=NS)  # fmt: skip
    else:
        store.update(HPAS, NS, "trading-api", lambda h: {**h, "status": {**h["status"], "desiredReplicas": 5 + i % 2}})


def _latencies(changes: list[tuple[float, str, WatchEvent]], rows: _Rows, lines: list[dict[str, Any]],
               pod: str) -> dict[str, list[tuple[float, float]]]:  # fmt: skip
    """Per kind: (change -> received (the record's t), change -> record written) for every change."""
    out: dict[str, list[tuple[float, float]]] = {"pod readiness -> replica row": [], "Event -> k8s.event": [],
                                                 "HPA status -> k8s.hpa": []}  # fmt: skip
    ready_at = rows.ready_at()
    by_uid = {e["uid"]: e for e in lines if e["kind"] == "k8s.event"}
    assert len(by_uid) == sum(e["kind"] == "k8s.event" for e in lines), "an Event recorded twice"
    hpas = iter(e for e in lines if e["kind"] == "k8s.hpa" and not e["initial"])
    for at, what, ev in changes:
        if what == "pod":
            now = is_ready(ev.object)
            t, written = next((t, w) for t, w, ready in ready_at if t >= at and (pod in ready) == now)
            out["pod readiness -> replica row"].append((t - at, written - at))
        elif what == "event":
            e = by_uid[ev.object["metadata"]["uid"]]
            out["Event -> k8s.event"].append((e["t"] - at, e["written"] - at))
        else:
            e = next(hpas)
            assert e["desired"] == ev.object["status"]["desiredReplicas"], (e, ev.object["status"])
            out["HPA status -> k8s.hpa"].append((e["t"] - at, e["written"] - at))
    assert next(hpas, None) is None, "a k8s.hpa record with no change behind it"
    return out


def _figures(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{name:32} {len(ms):>5} {statistics.median(ms):>9.2f} {p95:>9.2f} {ms[-1]:>9.2f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between two changes")
    args = ap.parse_args(argv)
    assert EVENTS_V1 is not None and HPAS is not None
    clock = Clock()
    api, sim = _cluster()
    changes: list[tuple[float, str, WatchEvent]] = []
    kinds = {"pods": "pod", "events": "event", "horizontalpodautoscalers": "hpa"}

    def landed(ev: WatchEvent) -> None:
        changes.append((clock.now(), kinds[ev.resource.plural], ev))

    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as d, api:
        kubeconfig = api.write_kubeconfig(Path(d) / "kubeconfig", context=CONTEXT, namespace=NS)
        pod = api.store.list(PODS, Query(NS))[0][0]["metadata"]["name"]
        rows = _Rows(clock)
        watch = ClusterWatch(lambda: config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT),
                             namespace=NS, api_selector="app.kubernetes.io/name=trading-api",
                             api_deployment="trading-api", zone_label=ZONE, clock=clock)  # fmt: skip
        with EventLog(Path(d) / EVENTS, clock) as log:
            lines = _Lines(log, clock)
            watch.start(rows, lines)
            time.sleep(0.5)  # every watch is held by the server (start waits for it) and idle
            unsubscribe = [api.store.watch(rt, None, landed)[1] for rt in (PODS, EVENTS_V1, HPAS)]
            cpu0 = sum(psutil.Process().cpu_times()[:2])
            for i in range(args.changes):
                _change(api.store, i, pod)
                time.sleep(args.interval)
            time.sleep(1.0)  # the last records land
            cpu = sum(psutil.Process().cpu_times()[:2]) - cpu0
            watch.stop()
            for u in unsubscribe:
                u()
        on_disk = [e for e in read_events(Path(d) / EVENTS) if e["kind"] in ("k8s.event", "k8s.hpa")]
    sim.close()
    assert len(on_disk) == sum(e["kind"] in ("k8s.event", "k8s.hpa") for e in lines.lines)
    per_kind = _latencies(changes, rows, lines.lines, pod)
    assert sum(map(len, per_kind.values())) == args.changes, "a change without its record"
    print(
        f"{args.changes} changes, one every {args.interval * 1000:.0f} ms: from the change landing in the store "
        "to the record written (events.jsonl: the line flushed; replicas: the row handed to the samples sink)"
    )
    print(f"{'':32} {'n':>5} {'median ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for name, values in per_kind.items():
        print(_figures(name, [w for _, w in values]))
    every = [v for values in per_kind.values() for v in values]
    print(_figures("all", [w for _, w in every]))
    print(_figures("all, to receipt (the record's t)", [r for r, _ in every]))
    print(f"CPU, this process (watches + fake API server): {cpu / args.changes * 1000:.2f} ms per change; "
          f"watch gaps: {len(watch.stats()['gaps'])}")  # fmt: skip


if __name__ == "__main__":
    main()
