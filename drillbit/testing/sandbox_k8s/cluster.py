"""The sandbox's real processes as the objects of a Kubernetes API (the backend of ``FakeKubeAPI``).

What the API serves is read from the sandbox, never made up:

- a Node per region, labelled with the region as its zone;
- the manifests under test (the rendered overlay the sandbox is sized from): the API Deployment,
  the database StatefulSet, Services, PodDisruptionBudgets and the HPA, as written;
- a Pod per live API replica process (its pid is its identity: a restarted replica is a new pod),
  on its region's node, Ready when the replica answers ``/readyz`` on its own socket, its image
  tag the version the replica reports; a Pod per database node (``role`` label from Patroni);
- the Deployment's ``spec.replicas`` is the sandbox's (its autoscaler writes it, as an HPA writes
  the scale), its status and the HPA's status counted from those pods.

What the API is asked to do is done to the sandbox:

- deleting an API pod SIGKILLs that replica; the supervisor starts another, which appears as a new
  pod (Pending until ready);
- evicting an API pod from a cordoned node stops that replica for good and starts one in another
  region (the Deployment keeps its count; the scheduler puts it where it can); once no node is
  cordoned, every region is put back at its topology's size;
- deleting a database pod kills that node (Patroni fails over if it led) and starts it again
  after ``DB_RESTART_S``, as a StatefulSet brings back a pod under the same name;
- changing the Deployment's image rolls every replica to that tag (the sandbox's rolling update);
  changing its replicas scales the regions, spread as topology spread would.

``sync`` reads the sandbox once and writes only what changed, so a watch streams real changes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from drillbit.core.errors import DrillError
from drillbit.manifests.sizes import spread
from drillbit.targets.kubernetes import image_repo
from drillbit.targets.sandbox import loopback
from drillbit.targets.sandbox.autoscaler import write_cordoned
from drillbit.targets.sandbox.sandbox import Sandbox
from drillbit.testing.kubeapi.hooks import NullBackend
from drillbit.testing.kubeapi.resources import RESOURCES, ResourceType, find
from drillbit.testing.kubeapi.selectors import LabelSelector, Query
from drillbit.testing.kubeapi.store import ApiError, Store

__all__ = ["DB_RESTART_S", "PID_ANNOTATION", "ZONE_LABEL", "SandboxCluster"]

log = logging.getLogger(__name__)

ZONE_LABEL = "topology.kubernetes.io/zone"
PID_ANNOTATION = "sandbox.drillbit.dev/pid"
REGION_ANNOTATION = "sandbox.drillbit.dev/region"
DB_RESTART_S = 2.0  # a deleted database pod's node is started again after this (kubelet restart)
PROBE_TIMEOUT_S = 1.0


def _rt(plural: str, group: str = "", version: str = "v1") -> ResourceType:
    rt = find(group, version, plural)
    assert rt is not None, plural
    return rt


PODS, NODES = _rt("pods"), _rt("nodes")
DEPLOYMENTS, STATEFULSETS = _rt("deployments", "apps"), _rt("statefulsets", "apps")
HPAS = _rt("horizontalpodautoscalers", "autoscaling", "v2")


@dataclass(frozen=True)
class Replica:
    """One live API replica process, as one sync saw it."""

    region: str
    pid: int
    version: str | None  # None until it answers on its socket
    ready: bool


def _probe(sock: Path, readiness: str = "/readyz") -> tuple[int, str, bool] | None:
    """(pid, version, ready) of the replica on ``sock``: its readiness path (the manifests' probe),
    or /healthz when not ready."""
    for path, ready in ((readiness, True), ("/healthz", False)):
        try:
            with loopback.client(uds=sock, timeout=PROBE_TIMEOUT_S) as client:
                r = client.get(f"http://replica{path}")
            if r.status_code == 200:
                body = r.json()
                return int(body["pid"]), str(body.get("version") or ""), ready
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:  # starting, draining or gone
            log.debug("replica %s: %s", sock.name, err)
            return None
    return None


def _pod_status(ready: bool, running: bool = True) -> dict[str, Any]:
    flag = "True" if ready else "False"
    return {
        "phase": "Running" if running else "Pending",
        "podIP": "127.0.0.1",
        "conditions": [{"type": t, "status": flag} for t in ("Initialized", "ContainersReady", "Ready")],
    }


def _kind_of(obj: dict[str, Any]) -> ResourceType | None:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return next((rt for rt in RESOURCES if (rt.group, rt.version, rt.kind) == (group, version, obj.get("kind"))), None)


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller reference to ``obj`` (a disruption budget counts the pods its owner wants)."""
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True}  # fmt: skip


def _tag(image: str) -> str | None:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


class SandboxCluster(NullBackend):
    """The backend: ``seed`` once, then ``sync`` on a period; the API's hooks act on the sandbox."""

    def __init__(self, sandbox: Sandbox, store: Store, objects: list[dict[str, Any]], *, namespace: str,
                 api_workload: str = "trading-api") -> None:  # fmt: skip
        self.sb, self.store, self.namespace = sandbox, store, namespace
        self.objects = objects
        self.api_workload = api_workload
        self._lock = threading.RLock()
        self._roll_lock = threading.Lock()
        self._closed = threading.Event()
        self._tombstones: set[int] = set()  # pids killed through the API, until the supervisor drops them

    # -- seeding -------------------------------------------------------------------------------
    def node(self, region: str) -> str:
        return f"sandbox-{region}"

    def seed(self) -> None:
        write_cordoned(self.sb.layout, [])  # a fresh API cordons nothing (a previous bridge's record goes)
        for region in self.sb.regions:
            labels = {ZONE_LABEL: region, "kubernetes.io/hostname": self.node(region)}
            self.store.create(NODES, {"metadata": {"name": self.node(region), "labels": labels}, "spec": {},
                                      "status": {"conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
        for obj in self.objects:
            rt = _kind_of(obj)
            if rt is None:
                continue  # a kind this API does not serve (RBAC, NetworkPolicy): nothing reads it here
            self.store.create(rt, obj, namespace=self.namespace if rt.namespaced else None)
        running = sorted({v for vs in self.sb.versions().values() for v in vs})
        if running:  # the Deployment says what runs: the image tag of the version the replicas run
            self._set_template_tag(running[0])
        self.sync()

    def _deployment(self) -> dict[str, Any]:
        return self.store.get(DEPLOYMENTS, self.namespace, self.api_workload)

    def _set_template_tag(self, version: str) -> None:
        def change(d: dict[str, Any]) -> dict[str, Any]:
            for c in d["spec"]["template"]["spec"]["containers"]:
                c["image"] = f"{image_repo(c['image'])}:{version}"
            return d

        self.store.update(DEPLOYMENTS, self.namespace, self.api_workload, change)

    # -- reading the sandbox ---------------------------------------------------------------------
    def replicas(self) -> list[Replica]:
        """Every live API replica process (the supervisor's pids), with what its socket says."""
        out: list[Replica] = []
        for region in self.sb.regions:
            name = f"api-{region}"
            pids = self.sb.supervisor.pids(name) if self.sb.supervisor.status(name) == "active" else []
            sockets = sorted(self.sb.layout.run.glob(f"api-{region}-*.sock"))
            with ThreadPoolExecutor(max_workers=max(1, len(sockets))) as pool:
                probe = functools.partial(_probe, readiness=self.sb.topology.api.readiness_path)
                answers = {a[0]: a for a in pool.map(probe, sockets) if a is not None}
            for pid in pids:
                _pid, version, ready = answers.get(pid, (pid, None, False))
                out.append(Replica(region, pid, version, ready))
        return out

    # -- the sync --------------------------------------------------------------------------------
    def sync(self) -> None:
        with self._lock:
            live = self.replicas()
            self._sync_api_pods(live)
            self._sync_db_pods()
            self._sync_status()

    def _api_pods(self) -> list[dict[str, Any]]:
        selector = LabelSelector.from_dict(self._deployment()["spec"]["selector"])
        return self.store.list(PODS, Query(self.namespace, selector))[0]

    def _sync_api_pods(self, live: list[Replica]) -> None:
        deployment = self._deployment()
        template = deployment["spec"]["template"]
        containers = template["spec"]["containers"]
        pods = {p["metadata"].get("annotations", {}).get(PID_ANNOTATION): p for p in self._api_pods()}
        self._tombstones &= {r.pid for r in live}
        owner = _owner(deployment)
        for r in live:
            if r.pid in self._tombstones:
                continue  # killed through the API: its pod is gone
            version = r.version or _tag(containers[0]["image"]) or "unknown"
            spec = {
                **template["spec"],
                "nodeName": self.node(r.region),
                "containers": [{**c, "image": f"{image_repo(c['image'])}:{version}"} for c in containers],
            }
            status = _pod_status(r.ready, running=r.version is not None)
            pod = pods.pop(str(r.pid), None)
            if pod is None:
                digest = hashlib.sha256(version.encode()).hexdigest()[:10]
                meta = {"name": f"{self.api_workload}-{digest}-{r.pid}",
                        "labels": {**template["metadata"]["labels"], "pod-template-hash": digest},
                        "annotations": {PID_ANNOTATION: str(r.pid), REGION_ANNOTATION: r.region},
                        "ownerReferences": [owner]}  # fmt: skip
                self.store.create(PODS, {"metadata": meta, "spec": spec, "status": status}, namespace=self.namespace)
            else:
                self._update(PODS, pod["metadata"]["name"], lambda p, s=spec, st=status: {**p, "spec": s, "status": st})
        for gone in pods.values():  # processes that exited: their pods are gone
            with contextlib.suppress(ApiError):
                self.store.delete(PODS, self.namespace, gone["metadata"]["name"])

    def _update(self, rt: ResourceType, name: str, change: Any) -> None:
        with contextlib.suppress(ApiError):  # deleted meanwhile through the API
            self.store.update(rt, self.namespace, name, change)

    def _statefulset(self) -> dict[str, Any] | None:
        sets = self.store.list(STATEFULSETS, Query(self.namespace))[0]
        return sets[0] if sets else None

    def _sync_db_pods(self) -> None:
        sts = self._statefulset()
        if sts is None:
            return
        members = {m.get("name"): m for m in self.sb.cluster()}
        template = sts["spec"]["template"]
        for i, region in enumerate(self.sb.regions):
            name = f"{sts['metadata']['name']}-{i}"
            pids = self.sb.supervisor.pids(f"db-{region}") if self.sb.supervisor.status(f"db-{region}") == "active" \
                else []  # fmt: skip
            try:
                pod: dict[str, Any] | None = self.store.get(PODS, self.namespace, name)
            except ApiError:
                pod = None
            if not pids:
                if pod is not None:
                    with contextlib.suppress(ApiError):
                        self.store.delete(PODS, self.namespace, name)
                continue
            m = members.get(region) or {}
            role = "master" if m.get("role") == "leader" else "replica"
            ready = (m.get("role"), m.get("state")) in (("leader", "running"), ("replica", "streaming"),
                                                         ("sync_standby", "streaming"))  # fmt: skip
            labels = {**template["metadata"]["labels"], "role": role}
            spec = {**template["spec"], "nodeName": self.node(region)}
            if pod is not None and pod["metadata"].get("annotations", {}).get(PID_ANNOTATION) != str(pids[0]):
                with contextlib.suppress(ApiError):  # a new process: a new pod of the same name
                    self.store.delete(PODS, self.namespace, name)
                pod = None
            if pod is None:
                meta = {"name": name, "labels": labels, "ownerReferences": [_owner(sts)],
                        "annotations": {PID_ANNOTATION: str(pids[0]), REGION_ANNOTATION: region}}  # fmt: skip
                self.store.create(PODS, {"metadata": meta, "spec": spec, "status": _pod_status(ready)},
                                  namespace=self.namespace)  # fmt: skip
            else:
                self._update(PODS, name, lambda p, lb=labels, rd=ready: {
                    **p, "metadata": {**p["metadata"], "labels": lb}, "status": _pod_status(rd)})  # fmt: skip

    def _sync_status(self) -> None:
        desired = sum(self.sb.supervisor.numprocesses(f"api-{r}") for r in self.sb.regions
                      if self.sb.supervisor.status(f"api-{r}") == "active")  # fmt: skip
        pods = [p for p in self._api_pods() if not p["metadata"].get("deletionTimestamp")]
        ready = sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]) for p in pods
        )
        image = self._deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
        updated = sum(p["spec"]["containers"][0]["image"] == image for p in pods)

        def deployment(d: dict[str, Any]) -> dict[str, Any]:
            status = {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "updatedReplicas": updated,
                "unavailableReplicas": max(0, desired - ready),
                "conditions": [{"type": "Available", "status": "True" if ready >= desired else "False"}],
            }
            return {**d, "spec": {**d["spec"], "replicas": desired}, "status": status}

        self._update(DEPLOYMENTS, self.api_workload, deployment)
        for hpa in self.store.list(HPAS, Query(self.namespace))[0]:
            if hpa["spec"]["scaleTargetRef"].get("name") == self.api_workload:
                self._update(HPAS, hpa["metadata"]["name"], lambda h: {
                    **h, "status": {"currentReplicas": len(pods), "desiredReplicas": desired}})  # fmt: skip
        sts = self._statefulset()
        if sts is not None:
            db = [p for p in self.store.list(PODS, Query(self.namespace))[0]
                  if p["metadata"]["name"].startswith(f"{sts['metadata']['name']}-")]  # fmt: skip
            db_ready = sum(p["status"]["conditions"][-1]["status"] == "True" for p in db)
            self._update(
                STATEFULSETS,
                sts["metadata"]["name"],
                lambda s: {
                    **s,
                    "status": {"replicas": len(db), "readyReplicas": db_ready, "availableReplicas": db_ready},
                },
            )

    def run(self, interval: float) -> None:
        """Sync every ``interval`` seconds until ``close``; a failed sync is logged and retried."""
        while not self._closed.wait(interval):
            try:
                self.sync()
            except (DrillError, ApiError, OSError) as err:
                log.warning("sync failed (retrying): %s", err)

    def close(self) -> None:
        self._closed.set()

    # -- the API's hooks -------------------------------------------------------------------------
    def _api_pid(self, pod: dict[str, Any]) -> tuple[str, int] | None:
        """(region, pid) of an API pod whose pid is one of the sandbox's live API replicas."""
        ann = pod["metadata"].get("annotations") or {}
        if PID_ANNOTATION not in ann or not pod["metadata"]["name"].startswith(f"{self.api_workload}-"):
            return None
        region, pid = ann.get(REGION_ANNOTATION, ""), int(ann[PID_ANNOTATION])
        if region not in self.sb.regions or pid not in self.sb.supervisor.pids(f"api-{region}"):
            return None  # never signal a pid that is not (any more) the sandbox's replica
        return region, pid

    def _db_region(self, pod: dict[str, Any]) -> str | None:
        """The region of a database pod (the StatefulSet's ``<name>-<index>``), else None."""
        sts = self._statefulset()
        name = pod["metadata"]["name"]
        if sts is None or not name.startswith(f"{sts['metadata']['name']}-"):
            return None
        index = name.rsplit("-", 1)[1]
        return self.sb.regions[int(index)] if index.isdigit() and int(index) < len(self.sb.regions) else None

    def _kill(self, pid: int) -> None:
        self._tombstones.add(pid)  # the sync shows no pod for it while the supervisor reaps it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def on_delete_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        with self._lock:
            api = self._api_pid(pod)
            if api is not None:
                self._kill(api[1])  # the supervisor starts another: a new pod
                return
            region = self._db_region(pod)
            if region is None:
                return  # a pod whose process is already gone (an API pod not yet synced away): nothing to kill
            self.sb.kill_db_node(region)  # its node dies, and comes back (same name, new pod)
        threading.Thread(target=self._restart_db, args=(region,), name=f"restart-db-{region}", daemon=True).start()

    def _restart_db(self, region: str) -> None:
        if self._closed.wait(DB_RESTART_S):
            return
        try:
            self.sb.start_db_node(region)
        except DrillError as err:
            log.error("could not start the database node of %s again: %s", region, err)

    def _cordoned(self) -> set[str]:
        nodes = self.store.list(NODES, Query(None))[0]
        return {n["metadata"]["labels"].get(ZONE_LABEL) for n in nodes if (n.get("spec") or {}).get("unschedulable")}

    def on_evict(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        with self._lock:
            api = self._api_pid(pod)
            if api is None:
                return
            region, pid = api
            cordoned = self._cordoned()
            if region not in cordoned:  # evicted from a node that still takes pods: replaced in place
                self._kill(pid)
                return
            open_regions = [r for r in self.sb.regions if r not in cordoned]
            sup = self.sb.supervisor
            self._kill(pid)
            # at once, before the supervisor's next check (1 s) would start it again: one replica fewer here
            sup.decr(f"api-{region}")
            if open_regions:  # the Deployment's replacement, scheduled where a node takes it
                sup.incr(f"api-{min(open_regions, key=lambda r: sup.numprocesses(f'api-{r}'))}")

    def on_patch(self, kind: str, namespace: str | None, name: str, patch: Any, obj: dict[str, Any]) -> None:
        if kind == "Node":
            with self._lock:
                cordoned = self._cordoned()
                # the autoscaler scales no cordoned region (its nodes take no pod): published for it
                write_cordoned(self.sb.layout, sorted(cordoned))
                if not cordoned:
                    self._uncordoned()
        elif kind == "Deployment" and name == self.api_workload and isinstance(patch, dict):
            spec = patch.get("spec") or {}
            if "template" in spec:
                tag = _tag(obj["spec"]["template"]["spec"]["containers"][0]["image"])
                if tag:
                    threading.Thread(target=self._roll, args=(tag,), name="rollout", daemon=True).start()
            elif "replicas" in spec:
                self._scale(int(obj["spec"]["replicas"]))

    def _uncordoned(self) -> None:
        """Every node takes pods again: every region back at its size (the topology's, which the
        autoscaler starts from), as a descheduler would rebalance the spread (a real uncordon moves
        no pod; the sandbox's regions must be whole again for the drills after this one)."""
        with self._lock:
            for region in self.sb.topology.regions:
                if self.sb.supervisor.numprocesses(f"api-{region.name}") != region.api_replicas:
                    self.sb.supervisor.set_numprocesses(f"api-{region.name}", region.api_replicas)

    def _scale(self, total: int) -> None:
        for region, n in zip(self.sb.regions, spread(total, len(self.sb.regions)), strict=True):
            self.sb.supervisor.set_numprocesses(f"api-{region}", n)

    def _roll(self, version: str) -> None:
        with self._roll_lock:  # one rollout at a time, as a Deployment has one
            started = time.monotonic()
            try:
                result = self.sb.roll_out(version)
            except DrillError as err:
                log.error("rolling out %s failed: %s", version, err)
                return
            log.info("rolled out %s in %.1f s: %s", version, time.monotonic() - started, result.get("landed"))
