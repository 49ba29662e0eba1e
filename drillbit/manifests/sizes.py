"""What the sandbox takes from the deployment manifests it stands in for: the API's replicas and
its HPA (minimum, maximum, target), spread over the sandbox's regions as a zone spread with
maxSkew 1 spreads pods over zones.

So a change to the manifests shows up in a sandbox drill: fewer replicas, a lower HPA ceiling or
a higher target are what the drill then exercises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from drillbit.core.errors import ConfigError
from drillbit.manifests.rules import workloads

__all__ = ["DEFAULT_WORKLOAD", "RPS_METRIC", "ApiSizes", "api_sizes", "spread"]

DEFAULT_WORKLOAD = "trading-api"
RPS_METRIC = "http_requests_per_second"


@dataclass(frozen=True)
class ApiSizes:
    replicas: int  # at rest: the HPA's minimum when an HPA scales it, else spec.replicas
    autoscaling: bool
    max_replicas: int
    metric: str  # "rps" (a Pods metric of requests/s per pod) or "cpu"
    target: float  # requests/s per replica, or percent of one core per replica
    source: str  # Kind/name of what the figures came from, for the record


def spread(total: int, regions: int) -> list[int]:
    """``total`` pods over ``regions`` zones with maxSkew 1: the first regions take the remainder."""
    return [total // regions + (1 if i < total % regions else 0) for i in range(regions)]


def _cpu_request_cores(container: dict[str, Any]) -> float | None:
    cpu = str(((container.get("resources") or {}).get("requests") or {}).get("cpu") or "")
    if not cpu:
        return None
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def _target(hpa: dict[str, Any], containers: list[dict[str, Any]], source: str) -> tuple[str, float]:
    metrics = (hpa.get("spec") or {}).get("metrics") or []
    for m in metrics:
        pods = m.get("pods") or {}
        if m.get("type") == "Pods" and (pods.get("metric") or {}).get("name") == RPS_METRIC:
            return "rps", float(str((pods.get("target") or {}).get("averageValue", "0")))
    for m in metrics:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            utilization = float((res.get("target") or {}).get("averageUtilization", 0))
            cores = sum(c for c in (_cpu_request_cores(x) for x in containers) if c) or None
            if cores is None:
                raise ConfigError(source, "the HPA scales on CPU utilization but the pods request no CPU: "
                                          "set resources.requests.cpu")  # fmt: skip
            return "cpu", utilization * cores  # percent of the request -> percent of one core
    raise ConfigError(source, f"the HPA has neither a Pods metric {RPS_METRIC} nor a cpu Resource metric: "
                              "the sandbox's autoscaler scales on one of them")  # fmt: skip


def api_sizes(objects: list[dict[str, Any]], workload: str = DEFAULT_WORKLOAD, source: str = "manifests") -> ApiSizes:
    """The API workload's sizes from rendered manifests; ConfigError naming ``source`` when absent."""
    found = [w for w in workloads(objects) if w.obj["metadata"]["name"] == workload]
    if not found:
        raise ConfigError(source, f"no Deployment or StatefulSet named {workload!r}: name the API workload")
    w = found[0]
    if w.hpa is None:
        n = int(w.spec.get("replicas", 1))
        return ApiSizes(replicas=n, autoscaling=False, max_replicas=n, metric="rps", target=math.inf, source=w.name)
    spec = w.hpa.get("spec") or {}
    metric, target = _target(w.hpa, w.containers, source)
    if not target > 0:
        raise ConfigError(source, f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}: the target must be > 0")
    return ApiSizes(replicas=int(spec.get("minReplicas", 1)), autoscaling=True, max_replicas=int(spec["maxReplicas"]),
                    metric=metric, target=target, source=f"{w.name}, HorizontalPodAutoscaler/"
                    f"{w.hpa['metadata']['name']}")  # fmt: skip
