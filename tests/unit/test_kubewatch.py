"""The watch-based samplers of a Kubernetes target (drillbit.targets.kubewatch) against the fake Kubernetes
API over real HTTP, under the drill runner's RBAC Role. Ground truth is what the test does to the cluster,
timed as each write lands in the store (a store listener runs under the store's lock, on the drill clock):
every record is checked against it, and the latency from a change to its record is printed
(``pytest -s``)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes import config
from kubernetes.client import CoreV1Api

from drillbit.core.clock import Clock
from drillbit.core.errors import EnvironmentFailure
from drillbit.core.events import EventLog, read_events
from drillbit.core.rundir import EVENTS, REPLICAS, REPLICAS_SCHEMA
from drillbit.probes.samplers import read_meta, read_samples
from drillbit.session import Session
from drillbit.targets import resolve_target
from drillbit.targets.kubernetes import KubernetesTarget
from drillbit.targets.kubewatch import ClusterWatch, WatchGap, cluster_time, for_target, is_ready
from drillbit.testing.kubeapi import FakeKubeAPI, Policy, Query, Store, WatchEvent
from drillbit.testing.kubeapi.resources import ResourceType, find
from drillbit.testing.kubeapi.sim import DEPLOYMENTS, NODES, PODS, SERVICES, Simulator

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "infra" / "k8s" / "base" / "drill-runner-rbac.yaml"
NS = "trading-staging"
CONTEXT = "staging"
API = {"app.kubernetes.io/name": "trading-api"}
ZONE = "topology.kubernetes.io/zone"
SETTLE_S = 0.3  # the simulated controller's replacement delay, and its pods' time to ready


def _rt(group: str, version: str, plural: str) -> ResourceType:
    rt = find(group, version, plural)
    assert rt is not None
    return rt


EVENTS_V1 = _rt("", "v1", "events")
HPAS = _rt("autoscaling", "v2", "horizontalpodautoscalers")


# -- the cluster, and what the test knows about it ---------------------------------------------------


@dataclass
class Cluster:
    api: FakeKubeAPI
    sim: Simulator
    kubeconfig: Path
    clock: Clock = field(default_factory=Clock)

    @property
    def store(self) -> Store:
        return self.api.store

    def client(self) -> Any:
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=CONTEXT)

    def pods(self) -> list[dict[str, Any]]:
        return self.store.list(PODS, Query(NS))[0]


@contextlib.contextmanager
def _cluster(tmp_path: Path, *, history: int = 10_000) -> Iterator[Cluster]:
    server = FakeKubeAPI(store=Store(history=history), policy=Policy.from_file(RBAC))
    sim = Simulator(server.store, replace_after=SETTLE_S, ready_after=SETTLE_S)
    server.backend = sim
    for node, zone in (("node-a1", "zone-a"), ("node-a2", "zone-a"), ("node-b1", "zone-b"), ("node-b2", "zone-b")):
        sim.add_node(node, {ZONE: zone})
    sim.add_deployment(NS, "trading-api", replicas=4, image="registry.example/trading-api:1", labels=API)
    sim.add_service(NS, "trading-api", API)
    with server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", context=CONTEXT, namespace=NS)
        yield Cluster(server, sim, kubeconfig)
    sim.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with _cluster(tmp_path) as c:
        yield c


class Truth:
    """Every write to one resource type, timed on the drill clock as it lands in the store."""

    def __init__(self, store: Store, rt: ResourceType, clock: Clock) -> None:
        self.clock = clock
        self.changes: list[tuple[float, WatchEvent]] = []
        _, self._unsubscribe = store.watch(rt, None, self._seen)  # the objects already there are not changes

    def _seen(self, event: WatchEvent) -> None:
        self.changes.append((self.clock.now(), event))

    def close(self) -> None:
        self._unsubscribe()


class ListSink:
    """The replica rows in memory, as a ParquetSink would journal them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.rows.append(dict(row))

    def snapshots(self) -> list[tuple[float, dict[str, dict[str, Any]]]]:
        """The rows grouped by their time: (t, zone -> row), in time order."""
        with self._lock:
            rows = list(self.rows)
        out: dict[float, dict[str, dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["t"], {})[r["region"]] = r
        return sorted(out.items())


def _cluster_watch(cluster: Cluster, **kwargs: Any) -> ClusterWatch:
    return ClusterWatch(cluster.client, namespace=NS, api_selector="app.kubernetes.io/name=trading-api",
                        api_deployment="trading-api", zone_label=ZONE, clock=cluster.clock, **kwargs)  # fmt: skip


@contextlib.contextmanager
def _watching(watch: ClusterWatch, tmp_path: Path, clock: Clock) -> Iterator[tuple[ListSink, Path]]:
    sink, path = ListSink(), tmp_path / EVENTS
    with EventLog(path, clock) as events:
        watch.start(sink, events)
        try:
            yield sink, path
        finally:
            watch.stop()


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def _ready(counts: dict[str, dict[str, Any]]) -> set[str]:
    return {i for c in counts.values() for i in c["ready_ids"]}


def _records(path: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_events(path) if e.get("kind") == kind]


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _figures(what: str, latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{what}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms "
            f"over {len(ms)} changes")  # fmt: skip


def _readiness_latencies(truth: Truth, snaps: list[tuple[float, dict[str, dict[str, Any]]]]) -> list[float]:
    """For every pod that turned ready or stopped being ready (deleted, terminating, condition False):
    from the write to the first replica row that shows it."""
    out = []
    for at, ev in truth.changes:
        name = ev.object["metadata"]["name"]
        was = ev.type != "ADDED" and is_ready(ev.old if ev.type == "MODIFIED" and ev.old else ev.object)
        now = ev.type != "DELETED" and is_ready(ev.object)
        if was == now:
            continue
        shown = next(t for t, zones in snaps if t >= at and (name in _ready(zones)) == now)
        out.append(shown - at)
    return out


# -- replicas --------------------------------------------------------------------------------------


def test_killed_pods_go_not_ready_and_exactly_their_replacements_appear(cluster: Cluster, tmp_path: Path) -> None:
    truth = Truth(cluster.store, PODS, cluster.clock)
    watch = _cluster_watch(cluster)
    with _watching(watch, tmp_path, cluster.clock) as (sink, _):
        before = _ready(sink.snapshots()[-1][1])
        assert before == {p["metadata"]["name"] for p in cluster.pods()} and len(before) == 4
        victims = set(sorted(before)[:2])
        core = CoreV1Api(cluster.client())
        for name in victims:
            core.delete_namespaced_pod(name, NS)
        assert _wait(lambda: len(_ready(watch.counts())) == 4 and not victims & _ready(watch.counts()))
    truth.close()
    snaps = sink.snapshots()
    gone = set().union(*(_ready(a) - _ready(b) for (_, a), (_, b) in itertools.pairwise(snaps)))
    came = set().union(*(_ready(b) - _ready(a) for (_, a), (_, b) in itertools.pairwise(snaps)))
    created = {ev.object["metadata"]["name"] for _, ev in truth.changes if ev.type == "ADDED"}
    assert gone == victims  # exactly those pods went not ready
    assert came == created and len(came) == 2 and not came & before  # and exactly their replacements came
    assert _ready(snaps[-1][1]) == (before - victims) | came
    assert min(sum(r["ready"] for r in zones.values()) for _, zones in snaps) == 2  # both gone before a new one
    assert all(sum(r["desired"] for r in zones.values()) == 4 for _, zones in snaps)  # the Deployment wants 4
    assert all(r["ready"] == len(r["ready_ids"]) for _, zones in snaps for r in zones.values())
    latencies = _readiness_latencies(truth, snaps)
    assert len(latencies) == 4  # 2 deleted, 2 replacements turned ready
    print("\n" + _figures("pod readiness change -> replica row", latencies))
    assert max(latencies) < 1.0


def _drill_yaml(tmp_path: Path, cluster: Cluster) -> Path:
    target = {"kind": "kubernetes", "context": CONTEXT, "kubeconfig": str(cluster.kubeconfig), "namespace": NS,
              "server": cluster.api.url}  # fmt: skip
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump({"targets": {"staging": target}}))
    return path


def _kube_target(tmp_path: Path, cluster: Cluster) -> KubernetesTarget:
    target = resolve_target("staging", config=_drill_yaml(tmp_path, cluster), state_dir=tmp_path / "state")
    assert isinstance(target, KubernetesTarget)
    return target


def _sorted_ids(counts: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int, list[str]]]:
    return {z: (c["desired"], c["ready"], sorted(c["ready_ids"])) for z, c in counts.items()}


def test_terminating_unready_and_rezoned_pods_are_counted_as_the_polling_driver_counts_them(
    cluster: Cluster, tmp_path: Path
) -> None:
    target = _kube_target(tmp_path, cluster)
    assert for_target(SimpleNamespace(kind="sandbox"), clock=cluster.clock) is None
    assert for_target(object(), clock=cluster.clock) is None
    watch = for_target(target, clock=cluster.clock)
    assert isinstance(watch, ClusterWatch) and (watch.namespace, watch.api_deployment) == (NS, "trading-api")
    pods = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in cluster.pods()}
    terminating, unready = pods["node-a1"], pods["node-b1"]

    def agrees() -> bool:
        return _sorted_ids(watch.counts()) == _sorted_ids(target.replicas())

    def change(
        rt: ResourceType, name: str, fn: Callable[[dict[str, Any]], dict[str, Any]], ns: str | None = NS
    ) -> None:
        cluster.store.update(rt, ns, name, fn)
        assert _wait(agrees), (watch.counts(), target.replicas())

    with _watching(watch, tmp_path, cluster.clock) as (sink, _):
        assert agrees()
        change(PODS, terminating, lambda p: {**p, "metadata": {**p["metadata"], "deletionTimestamp": _rfc3339(
            time.time())}})  # fmt: skip
        change(PODS, unready, lambda p: {**p, "status": {**p["status"], "conditions": [
            {"type": "Ready", "status": "False"}]}})  # fmt: skip
        counts = watch.counts()
        assert _sorted_ids(counts) == {
            "zone-a": (1, 1, [pods["node-a2"]]), "zone-b": (2, 1, [pods["node-b2"]]), "unscheduled": (1, 0, []),
        }  # fmt: skip
        change(NODES, "node-b1", lambda n: {**n, "metadata": {**n["metadata"], "labels": {ZONE: "zone-c"}}}, None)
        change(DEPLOYMENTS, "trading-api", lambda d: {**d, "spec": {**d["spec"], "replicas": 6}})
        assert _sorted_ids(watch.counts()) == {
            "zone-a": (1, 1, [pods["node-a2"]]), "zone-b": (1, 1, [pods["node-b2"]]), "zone-c": (1, 0, []),
            "unscheduled": (3, 0, []),
        }  # fmt: skip
    assert _sorted_ids(sink.snapshots()[-1][1]) == _sorted_ids(watch.counts())  # the last rows say the same


# -- events, restarts, resumed and relisted watches ------------------------------------------------


def _event(name: str, reason: str, pod: str, at: float, count: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS},
            "reason": reason, "message": f"{reason} {pod}", "type": "Warning", "count": count,
            "firstTimestamp": _rfc3339(at), "lastTimestamp": _rfc3339(at),
            "source": {"component": "kubelet"}}  # fmt: skip


def _restarted(pod: dict[str, Any], at: float) -> dict[str, Any]:
    terminated = {"reason": "OOMKilled", "exitCode": 137, "finishedAt": _rfc3339(at)}
    status = {"name": "trading-api", "ready": True, "restartCount": 1, "lastState": {"terminated": terminated}}
    return {**pod, "status": {**pod["status"], "containerStatuses": [status]}}


def test_an_oomkilled_event_and_a_restart_are_recorded_once_through_resumed_and_relisted_watches(
    tmp_path: Path,
) -> None:
    with _cluster(tmp_path, history=40) as cluster:
        store, clock = cluster.store, cluster.clock
        victim = cluster.pods()[0]["metadata"]["name"]
        store.create(EVENTS_V1, _event("old.1", "BackOff", victim, time.time() - 60), namespace=NS)  # before the drill
        watch = _cluster_watch(cluster, watch_timeout_s=1)
        with _watching(watch, tmp_path, clock) as (_, path):
            created_at = clock.now()
            oom = store.create(EVENTS_V1, _event("oom.1", "OOMKilled", victim, time.time()), namespace=NS)
            store.create(EVENTS_V1, {**_event("sched.1", "Scheduled", victim, time.time()), "type": "Normal"},
                         namespace=NS)  # fmt: skip
            store.update(EVENTS_V1, NS, "old.1", lambda e: {**e, "count": 2, "lastTimestamp": _rfc3339(time.time())})
            restarted_at = clock.now()
            store.update(PODS, NS, victim, lambda p: _restarted(p, time.time()))
            assert _wait(lambda: len(_records(path, "k8s.event")) == 2 and len(_records(path, "k8s.restart")) == 1)
            streams = {n: r["streams"] for n, r in watch.stats()["resources"].items()}
            # more writes than the history keeps, to a resource nobody watches: each watch's next resume
            # (within its 1 s timeout) finds its resourceVersion compacted, gets 410 Gone and relists
            for i in range(60):
                store.update(SERVICES, NS, "trading-api", lambda s, i=i: {**s, "metadata": {
                    **s["metadata"], "annotations": {"tick": str(i)}}})  # fmt: skip

            def relisted() -> bool:
                stats = watch.stats()
                return not stats["down"] and all(
                    r["gone"] >= 1 and r["lists"] >= 2 for r in stats["resources"].values()
                )

            assert _wait(relisted), watch.stats()
            assert all(r["streams"] > streams[n] for n, r in watch.stats()["resources"].items())  # resumed
        events = _records(path, "k8s.event")
        restarts = _records(path, "k8s.restart")
        lost = _records(path, "k8s.watch.lost")
    assert [(e["reason"], e["count"], e["previous_count"]) for e in events] == [("OOMKilled", 1, 0), ("BackOff", 2, 1)]
    got = events[0]
    assert got["object"] == {"kind": "Pod", "name": victim} and got["uid"] == oom["metadata"]["uid"]
    assert got["cluster_t"] == cluster_time(oom["lastTimestamp"]) and got["source"] == "kubelet"
    assert 0 <= got["t"] - created_at < 1.0  # received (drill clock) just after it was written
    assert [(r["pod"], r["container"], r["restarts"], r["previous"], r["reason"], r["exit_code"], r["zone"])
            for r in restarts] == [(victim, "trading-api", 1, 0, "OOMKilled", 137, restarts[0]["zone"])]  # fmt: skip
    assert restarts[0]["zone"] in ("zone-a", "zone-b") and 0 <= restarts[0]["t"] - restarted_at < 1.0
    assert {e["resource"] for e in lost if e["reason"] == "410 Gone: relisting"} == {
        "nodes", "deployments", "pods", "hpa", "events"}  # fmt: skip


def test_hpa_current_and_desired_replicas_are_recorded_at_start_and_on_every_change(
    cluster: Cluster, tmp_path: Path
) -> None:
    def hpa(name: str, deployment: str, current: int, desired: int) -> dict[str, Any]:
        return {"metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                         "minReplicas": 4, "maxReplicas": 8},
                "status": {"currentReplicas": current, "desiredReplicas": desired}}  # fmt: skip

    def scale(name: str, **status: int) -> None:
        cluster.store.update(HPAS, NS, name, lambda h: {**h, "status": {
            **h["status"], **status, "lastScaleTime": _rfc3339(time.time())}})  # fmt: skip

    store, clock = cluster.store, cluster.clock
    store.create(HPAS, hpa("trading-api", "trading-api", 4, 4), namespace=NS)
    store.create(HPAS, hpa("other", "reporting", 2, 2), namespace=NS)
    truth = Truth(store, HPAS, clock)
    watch = _cluster_watch(cluster)
    with _watching(watch, tmp_path, clock) as (_, path):
        # the fake subscribes a watch to its store just after answering it: a change within that instant is
        # replayed from its history ~40 ms later (never lost); the figures below are for a watch at rest
        time.sleep(0.2)
        scale("trading-api", desiredReplicas=6)
        scale("other", desiredReplicas=9)
        store.update(HPAS, NS, "trading-api", lambda h: {**h, "metadata": {**h["metadata"], "labels": {"x": "y"}}})
        scale("trading-api", currentReplicas=6)
        scale("trading-api", desiredReplicas=5)  # the last change: once it is recorded, every earlier one was
        assert _wait(lambda: any(r["desired"] == 5 for r in _records(path, "k8s.hpa")))
    truth.close()
    records = _records(path, "k8s.hpa")
    assert [(r["hpa"], r["current"], r["desired"], r["initial"]) for r in records] == [
        ("trading-api", 4, 4, True), ("trading-api", 4, 6, False), ("trading-api", 6, 6, False),
        ("trading-api", 6, 5, False),
    ]  # fmt: skip
    assert (records[0]["min_replicas"], records[0]["max_replicas"], records[0]["cluster_t"]) == (4, 8, None)
    changes = [at for at, ev in truth.changes if ev.object["metadata"]["name"] == "trading-api"
               and ev.object["status"] != (ev.old or {}).get("status")]  # fmt: skip
    latencies = [r["t"] - at for r, at in zip(records[1:], changes, strict=True)]
    assert all(0 <= x < 1.0 for x in latencies)
    assert all(r["cluster_t"] is not None for r in records[1:])
    print("\n" + _figures("HPA status change -> events.jsonl", latencies))


def test_a_watch_the_role_does_not_grant_fails_the_start_and_leaves_nothing_running(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    for doc in documents:
        for rule in (doc or {}).get("rules") or []:
            if "deployments" in rule["resources"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "watch"]
    with _cluster(tmp_path) as cluster:
        cluster.api.policy = Policy.from_documents(documents)
        watch = _cluster_watch(cluster)
        with (
            EventLog(tmp_path / EVENTS, cluster.clock) as events,
            pytest.raises(EnvironmentFailure, match="cannot watch deployments: refused: 403"),
        ):
            watch.start(ListSink(), events)
        assert not [t for t in threading.enumerate() if t.name.startswith("kubewatch-")]
        assert watch.died is not None and "deployments" in watch.died


# -- a dropped connection ----------------------------------------------------------------------------


class Relay:
    """A TCP relay to the fake API that can cut every connection and refuse new ones (a network cut)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.refusing = threading.Event()
        self.closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.refusing.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:  # the other side was cut: this direction ends too
            return
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.refusing.set()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed.set()
        self.cut()
        self._thread.join(timeout=2)
        self.listener.close()


def test_a_dropped_watch_is_a_recorded_gap_resumed_from_its_last_resource_version(
    cluster: Cluster, tmp_path: Path
) -> None:
    relay = Relay(cluster.api.port)
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = relay.url
    cluster.kubeconfig.write_text(yaml.safe_dump(doc))
    watch = _cluster_watch(cluster, watch_timeout_s=60)
    victim = cluster.pods()[0]["metadata"]["name"]
    try:
        with _watching(watch, tmp_path, cluster.clock) as (sink, path):
            assert watch.sample() > 0
            relay.cut()
            assert _wait(lambda: "pods" in watch.stats()["down"])
            with pytest.raises(WatchGap, match="pods"):
                watch.sample()
            cluster.store.delete(PODS, NS, victim)  # the cluster changes while drillbit cannot see it
            time.sleep(0.3)
            assert victim in _ready(watch.counts())  # it cannot know yet, and writes no row meanwhile
            relay.refusing.clear()
            assert _wait(lambda: not watch.stats()["down"] and victim not in _ready(watch.counts()))
            watch.sample()
            stopping = time.monotonic()
            watch.stop()  # five watches open for 60 s each
            assert time.monotonic() - stopping < 2.0
    finally:
        relay.close()
    stats = watch.stats()
    pods = stats["resources"]["pods"]
    assert pods["drops"] >= 1 and pods["lists"] == 1 and pods["gone"] == 0  # resumed, not relisted
    lost = [e for e in _records(path, "k8s.watch.lost") if e["resource"] == "pods"]
    resumed = [e for e in _records(path, "k8s.watch.resumed") if e["resource"] == "pods"]
    assert len(lost) == len(resumed) >= 1 and resumed[-1]["gap_s"] > 0.3
    assert [g for g in stats["gaps"] if g["resource"] == "pods"][-1]["to"] == resumed[-1]["t"]
    snaps = sink.snapshots()
    assert not [t for t, _ in snaps if lost[0]["t"] < t < resumed[-1]["t"]]  # no row while it could not see
    shown = next(t for t, zones in snaps if victim not in _ready(zones))
    assert shown >= resumed[-1]["t"]


# -- in a drill's session ----------------------------------------------------------------------------


class Polled:
    def replicas(self) -> dict[str, dict[str, Any]]:
        return {"region-a": {"desired": 1, "ready": 1, "ready_ids": ["1"]}}


def test_a_session_watches_a_kubernetes_target_and_still_polls_any_other(cluster: Cluster, tmp_path: Path) -> None:
    target = _kube_target(tmp_path, cluster)
    for name, source in (("kube", target), ("other", Polled())):
        run = tmp_path / name
        run.mkdir()
        session = Session(run, cluster.clock, api_url="http://127.0.0.1:9", run_id=name, write_path=False,
                          replicas=source, availability_interval=0.5)  # fmt: skip
        session.start()
        time.sleep(1.2)
        session.stop()
        meta = read_meta(run / REPLICAS)
        rows = read_samples(run / REPLICAS, REPLICAS_SCHEMA).to_pylist()
        assert meta["sampler"] == "replicas" and meta["interval_s"] == 1.0 and meta["probe_errors"] == 0
        if name == "kube":
            assert meta["source"] == "kubernetes watch" and meta["watch"]["resources"]["pods"]["lists"] == 1
            assert {(r["region"], r["desired"], r["ready"]) for r in rows} == {("zone-a", 2, 2), ("zone-b", 2, 2)}
            assert len({r["t"] for r in rows}) >= 2  # the state at start, and at least one tick
        else:
            assert "watch" not in meta and {(r["region"], r["ready"]) for r in rows} == {("region-a", 1)}
