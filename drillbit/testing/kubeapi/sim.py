"""Test-side only: an in-memory stand-in for the controllers and kubelets behind the fake API.

A ReplicaSet keeps its pods at ``spec.replicas``: a pod deleted or evicted is replaced under a new
name after ``replace_after`` seconds (Pending, not ready), which turns ready after ``ready_after``
more; patching a Deployment's ``spec.replicas`` scales its ReplicaSet the same way. Deployment and
ReplicaSet status (replicas, readyReplicas, availableReplicas) follow. No process runs anywhere:
drillbit's sandbox backend replaces this with real replicas.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from drillbit.testing.kubeapi.evictions import is_ready
from drillbit.testing.kubeapi.hooks import NullBackend
from drillbit.testing.kubeapi.resources import ResourceType, find
from drillbit.testing.kubeapi.selectors import LabelSelector, Query
from drillbit.testing.kubeapi.store import ApiError, Store

__all__ = ["Simulator"]

logger = logging.getLogger(__name__)


def _rt(group: str, version: str, plural: str) -> ResourceType:
    rt = find(group, version, plural)
    assert rt is not None, plural
    return rt


PODS = _rt("", "v1", "pods")
NODES = _rt("", "v1", "nodes")
SERVICES = _rt("", "v1", "services")
DEPLOYMENTS = _rt("apps", "v1", "deployments")
REPLICASETS = _rt("apps", "v1", "replicasets")
PDBS = _rt("policy", "v1", "poddisruptionbudgets")


def _ready_status(ready: bool) -> dict[str, Any]:
    flag = "True" if ready else "False"
    conditions = [{"type": t, "status": flag} for t in ("Initialized", "ContainersReady", "Ready")]
    return {"phase": "Running" if ready else "Pending", "conditions": conditions, "podIP": "127.0.0.1"}


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def _with_status(status: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "status": {**status, "observedGeneration": obj["metadata"].get("generation", 1)}}

    return change


class Simulator(NullBackend):
    def __init__(self, store: Store, *, replace_after: float = 0.05, ready_after: float = 0.05) -> None:
        self.store = store
        self.replace_after = replace_after
        self.ready_after = ready_after
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._closed = False

    # -- seeding -----------------------------------------------------------------------------------

    def add_node(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        node = {"metadata": {"name": name, "labels": labels or {}}, "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
        return self.store.create(NODES, node)

    def add_deployment(
        self, namespace: str, name: str, *, replicas: int = 3, image: str = "trading-api:1",
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A Deployment, its ReplicaSet and ``replicas`` ready pods."""
        labels = labels or {"app": name}
        template = {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": name, "image": image}]}}
        deployment = self.store.create(DEPLOYMENTS, {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": template},
        }, namespace=namespace)  # fmt: skip
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        rs_labels = {**labels, "pod-template-hash": digest}
        rs_template = {**template, "metadata": {"labels": rs_labels}}
        self.store.create(REPLICASETS, {
            "metadata": {"name": f"{name}-{digest}", "labels": rs_labels, "ownerReferences": [_owner(deployment)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": rs_labels}, "template": rs_template},
        }, namespace=namespace)  # fmt: skip
        self._reconcile(namespace, f"{name}-{digest}", ready=True)
        return self.store.get(DEPLOYMENTS, namespace, name)

    def add_pdb(
        self, namespace: str, name: str, labels: dict[str, str], *, min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        spec: dict[str, Any] = {"selector": {"matchLabels": labels}}
        if min_available is not None:
            spec["minAvailable"] = min_available
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        return self.store.create(PDBS, {"metadata": {"name": name}, "spec": spec}, namespace=namespace)

    def add_service(self, namespace: str, name: str, selector: dict[str, str]) -> dict[str, Any]:
        spec = {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        return self.store.create(SERVICES, {"metadata": {"name": name}, "spec": spec}, namespace=namespace)

    # -- the backend's hooks -----------------------------------------------------------------------

    def on_delete_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        self._pod_gone(namespace, pod)

    def on_evict(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        self._pod_gone(namespace, pod)

    def on_patch(self, kind: str, namespace: str | None, name: str, patch: Any, obj: dict[str, Any]) -> None:
        if kind != "Deployment" or namespace is None:
            return
        if "template" in (patch.get("spec") or {} if isinstance(patch, dict) else {}):
            self._roll(namespace, obj)
            return
        replicas = int(obj["spec"].get("replicas", 1))
        for rs in self._replicasets_of(namespace, obj):
            self.store.update(REPLICASETS, namespace, rs["metadata"]["name"],
                              lambda o: {**o, "spec": {**o["spec"], "replicas": replicas}})  # fmt: skip
            self._later(self.replace_after, self._reconcile, namespace, rs["metadata"]["name"])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    # -- the controllers ---------------------------------------------------------------------------

    def _pod_gone(self, namespace: str, pod: dict[str, Any]) -> None:
        owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
        if owner is not None and owner["kind"] == "ReplicaSet":
            self._later(self.replace_after, self._reconcile, namespace, owner["name"])
        self._later(0.0, self._refresh_status, namespace)

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except ApiError as err:  # an object deleted meanwhile: nothing to do
                logger.debug("simulator: %s", err.message)

        with self._lock:
            if self._closed:
                return
            timer = threading.Timer(delay, run)
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()

    def _replicasets_of(self, namespace: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        uid = deployment["metadata"]["uid"]
        return [rs for rs in self.store.list(REPLICASETS, Query(namespace))[0]
                if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]  # fmt: skip

    def _reconcile(self, namespace: str, rs_name: str, *, ready: bool = False) -> None:
        with self._lock:
            rs = self.store.get(REPLICASETS, namespace, rs_name)
            selector = LabelSelector.from_dict(rs["spec"]["selector"])
            pods = [p for p in self.store.list(PODS, Query(namespace, selector))[0]
                    if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
            wanted = int(rs["spec"].get("replicas", 1))
            for extra in pods[wanted:]:
                self.store.delete(PODS, namespace, extra["metadata"]["name"])
            template = rs["spec"]["template"]
            for _ in range(wanted - len(pods)):
                meta = {"generateName": f"{rs_name}-", "labels": dict(template["metadata"]["labels"]),
                        "ownerReferences": [_owner(rs)]}  # fmt: skip
                spec = {**template["spec"], **({"nodeName": n} if (n := self._schedule(namespace)) else {})}
                pod = self.store.create(PODS, {"metadata": meta, "spec": spec,
                                               "status": _ready_status(ready)}, namespace=namespace)  # fmt: skip
                if not ready:
                    self._later(self.ready_after, self._make_ready, namespace, pod["metadata"]["name"])
        self._refresh_status(namespace)

    def _schedule(self, namespace: str) -> str | None:
        """The schedulable node with the fewest pods of ``namespace`` (a spread); None without nodes."""
        nodes = [n["metadata"]["name"] for n in self.store.list(NODES, Query(None))[0]
                 if not (n.get("spec") or {}).get("unschedulable")]  # fmt: skip
        if not nodes:
            return None
        pods = [p for p in self.store.list(PODS, Query(namespace))[0] if not p["metadata"].get("deletionTimestamp")]
        load = {n: sum((p.get("spec") or {}).get("nodeName") == n for p in pods) for n in nodes}
        return min(nodes, key=lambda n: (load[n], n))

    def _roll(self, namespace: str, deployment: dict[str, Any]) -> None:
        """A changed pod template: a new ReplicaSet at the Deployment's replicas, the old ones at 0."""
        template = deployment["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{deployment['metadata']['name']}-{digest}"
        old = [rs for rs in self._replicasets_of(namespace, deployment) if rs["metadata"]["name"] != name]
        replicas = int(deployment["spec"].get("replicas", 1))
        if len(old) < len(self._replicasets_of(namespace, deployment)):  # back to an earlier template: its RS again
            self.store.update(REPLICASETS, namespace, name,
                              lambda o: {**o, "spec": {**o["spec"], "replicas": replicas}})  # fmt: skip
        else:
            labels = {**template["metadata"]["labels"], "pod-template-hash": digest}
            self.store.create(REPLICASETS, {
                "metadata": {"name": name, "labels": labels, "ownerReferences": [_owner(deployment)]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                         "template": {**template, "metadata": {"labels": labels}}},
            }, namespace=namespace)  # fmt: skip
        for rs in old:
            self.store.update(REPLICASETS, namespace, rs["metadata"]["name"],
                              lambda o: {**o, "spec": {**o["spec"], "replicas": 0}})  # fmt: skip
            self._later(self.replace_after, self._reconcile, namespace, rs["metadata"]["name"])
        self._later(self.replace_after, self._reconcile, namespace, name)

    def _make_ready(self, namespace: str, name: str) -> None:
        self.store.update(PODS, namespace, name, lambda pod: {**pod, "status": _ready_status(True)})
        self._refresh_status(namespace)

    def _refresh_status(self, namespace: str) -> None:
        with self._lock:
            pods = self.store.list(PODS, Query(namespace))[0]
            for rs in self.store.list(REPLICASETS, Query(namespace))[0]:
                selector = LabelSelector.from_dict(rs["spec"]["selector"])
                mine = [p for p in pods if selector.matches(p["metadata"].get("labels"))]
                ready = sum(map(is_ready, mine))
                status = {"replicas": len(mine), "readyReplicas": ready, "availableReplicas": ready}
                self.store.update(REPLICASETS, namespace, rs["metadata"]["name"], _with_status(status))
                for owner in rs["metadata"].get("ownerReferences") or []:
                    if owner.get("kind") == "Deployment":
                        self.store.update(DEPLOYMENTS, namespace, owner["name"], _with_status(status))
