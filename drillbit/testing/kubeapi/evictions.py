"""Whether an eviction may go ahead under the PodDisruptionBudgets (``policy/v1``), as the eviction
subresource decides it: 429 when the budget would be broken, 500 when two budgets cover the pod.

Expected pods are the scale of the pods' controllers (a ReplicaSet's or StatefulSet's
``spec.replicas``; a pod without one counts itself), so a pod deleted and not yet replaced still
counts as missing; healthy pods are the ready ones not being deleted. An unhealthy pod may go
whenever the budget is met (``unhealthyPodEvictionPolicy: IfHealthyBudget``, the default).
"""

from __future__ import annotations

import math
from typing import Any

from drillbit.testing.kubeapi.resources import ResourceType, find
from drillbit.testing.kubeapi.selectors import LabelSelector, Query
from drillbit.testing.kubeapi.store import ApiError, Store

__all__ = ["check_eviction", "is_ready"]

_PODS = find("", "v1", "pods")
_PDBS = find("policy", "v1", "poddisruptionbudgets")
_CONTROLLERS = {
    kind: find("apps", "v1", plural)
    for kind, plural in (("ReplicaSet", "replicasets"), ("StatefulSet", "statefulsets"), ("Deployment", "deployments"))
}


def is_ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _scaled(value: int | str, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _expected(store: Store, namespace: str, pods: list[dict[str, Any]]) -> int:
    expected, seen = 0, set()
    for pod in pods:
        owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
        rt: ResourceType | None = _CONTROLLERS.get(owner["kind"]) if owner else None
        if owner is None or rt is None:
            expected += 1
            continue
        if (owner["kind"], owner["name"]) in seen:
            continue
        seen.add((owner["kind"], owner["name"]))
        try:
            expected += int(store.get(rt, namespace, owner["name"]).get("spec", {}).get("replicas", 1))
        except ApiError:
            expected += 1  # the controller is gone: the pod stands for itself
    return expected


def check_eviction(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """Raise the API's refusal if evicting ``pod`` now would break its disruption budget."""
    assert _PODS is not None and _PDBS is not None
    labels = pod["metadata"].get("labels") or {}
    budgets = [b for b in store.list(_PDBS, Query(namespace))[0]
               if LabelSelector.from_dict((b.get("spec") or {}).get("selector")).matches(labels)]  # fmt: skip
    if not budgets:
        return
    if len(budgets) > 1:
        raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                                             "subresource does not support.")  # fmt: skip
    pdb = budgets[0]
    spec = pdb.get("spec") or {}
    selector = LabelSelector.from_dict(spec.get("selector"))
    covered = [p for p in store.list(_PODS, Query(namespace))[0] if selector.matches(p["metadata"].get("labels"))]
    expected = _expected(store, namespace, covered)
    healthy = sum(1 for p in covered if is_ready(p))
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        desired = 0
    allowed = healthy - desired if is_ready(pod) else (1 if healthy >= desired else 0)
    if allowed <= 0:
        name = pdb["metadata"]["name"]
        cause = {"reason": "DisruptionBudget",
                 "message": f"The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"}
        raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                       {"causes": [cause]})  # fmt: skip
