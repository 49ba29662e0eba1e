"""The resource types the fake API serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL_VERBS", "RESOURCES", "ResourceType", "api_groups", "api_resource_list", "api_versions", "find",
    "version_info",
]  # fmt: skip

#: the verbs every resource type here implements (generic CRUD over the store, plus watch)
ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "pods", "Pod", True, ("po",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",)),
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",)),
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",)),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
)

#: subresources served, by (group, plural): name -> (kind, group, version, verbs)
SUBRESOURCES: dict[tuple[str, str], dict[str, tuple[str, str, str, tuple[str, ...]]]] = {
    ("", "pods"): {"eviction": ("Eviction", "policy", "v1", ("create",))},
}


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def version_info() -> dict[str, Any]:
    return {
        "major": "1", "minor": "31", "gitVersion": "v1.31.0-drillbit-fake", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64",
    }  # fmt: skip


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``."""
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }  # fmt: skip


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_groups(group: str | None = None) -> dict[str, Any] | None:
    """``GET /apis`` (``group`` None) or ``GET /apis/<group>``; None for an unknown group."""
    groups = _group_versions()
    if group is not None:
        return _group_doc(group, groups[group]) if group in groups else None
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(n, v) for n, v in groups.items()]}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``GET /apis/<group>/<version>``; None for an unknown group version."""
    resources: list[dict[str, Any]] = []
    for rt in RESOURCES:
        if (rt.group, rt.version) != (group, version):
            continue
        resources.append({
            "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
            "verbs": list(ALL_VERBS), "shortNames": list(rt.short_names),
        })  # fmt: skip
        for sub, (kind, sub_group, sub_version, verbs) in SUBRESOURCES.get((rt.group, rt.plural), {}).items():
            resources.append({
                "name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced, "kind": kind,
                "group": sub_group, "version": sub_version, "verbs": list(verbs),
            })  # fmt: skip
    if not resources:
        return None
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
