"""What the sandbox takes from the deployment manifests it stands in for: the API's replicas and
its HPA (minimum, maximum, target), spread over the sandbox's regions as a zone spread with
maxSkew 1 spreads pods over zones; its rolling-update strategy (maxSurge, maxUnavailable) and its
readiness probe's path.

So a change to the manifests shows up in a sandbox drill: fewer replicas, a lower HPA ceiling or
a higher target are what the drill then exercises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from drillbit.core.errors import ConfigError
from drillbit.manifests.rules import workloads

__all__ = ["DEFAULT_WORKLOAD", "RPS_METRIC", "ApiSizes", "api_sizes", "rolling_update", "spread"]

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
    max_surge: int = 0  # the rolling update's, as absolute pod counts of ``replicas``
    max_unavailable: int = 1
    readiness_path: str | None = None  # the serving container's readinessProbe.httpGet.path


def _count(value: Any, total: int, round_up: bool, default: str) -> int:
    """A rolling update's maxSurge/maxUnavailable (an int or "25%") as pods of ``total``."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def rolling_update(spec: dict[str, Any], replicas: int) -> tuple[int, int]:
    """(max_surge, max_unavailable) of a Deployment spec, with Kubernetes' defaults (25 %, surge
    rounded up, unavailable down); Recreate takes every pod down at once."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, max(1, replicas)
    rolling = strategy.get("rollingUpdate") or {}
    surge = _count(rolling.get("maxSurge"), replicas, True, "25%")
    unavailable = _count(rolling.get("maxUnavailable"), replicas, False, "25%")
    return surge, (unavailable if surge or unavailable else 1)  # Kubernetes refuses 0 and 0


def _readiness_path(containers: list[dict[str, Any]]) -> str | None:
    for c in containers:
        path = (((c.get("readinessProbe") or {}).get("httpGet")) or {}).get("path")
        if path:
            return str(path)
    return None


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
        surge, unavailable = rolling_update(w.spec, n)
        return ApiSizes(replicas=n, autoscaling=False, max_replicas=n, metric="rps", target=math.inf, source=w.name,
                        max_surge=surge, max_unavailable=unavailable,
                        readiness_path=_readiness_path(w.containers))  # fmt: skip
    spec = w.hpa.get("spec") or {}
    metric, target = _target(w.hpa, w.containers, source)
    if not target > 0:
        raise ConfigError(source, f"HorizontalPodAutoscaler/{w.hpa['metadata']['name']}: the target must be > 0")
    n = int(spec.get("minReplicas", 1))
    surge, unavailable = rolling_update(w.spec, n)
    return ApiSizes(replicas=n, autoscaling=True, max_replicas=int(spec["maxReplicas"]),
                    metric=metric, target=target, source=f"{w.name}, HorizontalPodAutoscaler/"
                    f"{w.hpa['metadata']['name']}", max_surge=surge, max_unavailable=unavailable,
                    readiness_path=_readiness_path(w.containers))  # fmt: skip
