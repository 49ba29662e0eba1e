"""RBAC as the fake API enforces it, and the audit trail of every request.

A ``Policy`` is the rules of the Role and ClusterRole documents it was loaded from, all taken as bound
to the one identity the kubeconfig carries (bindings are not read). A Role's rules grant only in
namespaces (its own when its metadata names one); a ClusterRole's grant everywhere, cluster-scoped
resources included. Discovery (``/api``, ``/apis``, ``/version``) is open to any authenticated caller,
as ``system:discovery`` makes it in a real cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["AuditLog", "AuditRecord", "Policy", "PolicyRule", "RequestAttributes"]


@dataclass(frozen=True)
class RequestAttributes:
    verb: str  # get list watch create update patch delete (deletecollection)
    api_group: str
    resource: str  # the plural, e.g. "pods"
    subresource: str = ""  # e.g. "eviction"
    namespace: str | None = None
    name: str | None = None

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class PolicyRule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str] = frozenset()
    namespace: str | None = None  # a Role's namespace, if its metadata names one
    cluster_wide: bool = False  # from a ClusterRole

    def allows(self, attrs: RequestAttributes) -> bool:
        if not self.cluster_wide and (attrs.namespace is None or self.namespace not in (None, attrs.namespace)):
            return False
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        wanted = attrs.full_resource
        if attrs.subresource:
            candidates = {wanted, "*", f"{attrs.resource}/*", f"*/{attrs.subresource}"}
        else:
            candidates = {wanted, "*"}
        return bool(candidates & self.resources)


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any] | None]) -> Policy:
        rules: list[PolicyRule] = []
        for doc in documents:
            if not doc or doc.get("kind") not in ("Role", "ClusterRole"):
                continue
            namespace = (doc.get("metadata") or {}).get("namespace")
            for rule in doc.get("rules") or []:
                rules.append(PolicyRule(
                    api_groups=frozenset(rule.get("apiGroups") or ()), resources=frozenset(rule.get("resources") or ()),
                    verbs=frozenset(rule.get("verbs") or ()), resource_names=frozenset(rule.get("resourceNames") or ()),
                    namespace=namespace, cluster_wide=doc["kind"] == "ClusterRole",
                ))  # fmt: skip
        return cls(tuple(rules))

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        return cls.from_documents(yaml.safe_load_all(text))

    @classmethod
    def from_file(cls, path: Path | str) -> Policy:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    def allows(self, attrs: RequestAttributes) -> bool:
        return any(rule.allows(attrs) for rule in self.rules)


@dataclass(frozen=True)
class AuditRecord:
    time: float  # epoch seconds, when the request was decided
    method: str
    path: str
    verb: str  # "" for discovery and unauthenticated requests
    api_group: str
    resource: str  # with its subresource: "pods/eviction"
    namespace: str | None
    name: str | None
    allowed: bool
    code: int  # the HTTP status answered (200 for a watch that started streaming)


@dataclass
class AuditLog:
    """Every request the server answered, in order; thread-safe."""

    _records: list[AuditRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def record(self, method: str, path: str, attrs: RequestAttributes | None, *, allowed: bool, code: int) -> None:
        self.add(AuditRecord(
            time=time.time(), method=method, path=path, verb=attrs.verb if attrs else "",
            api_group=attrs.api_group if attrs else "", resource=attrs.full_resource if attrs else "",
            namespace=attrs.namespace if attrs else None, name=attrs.name if attrs else None,
            allowed=allowed, code=code,
        ))  # fmt: skip

    @property
    def records(self) -> list[AuditRecord]:
        with self._lock:
            return list(self._records)

    def count(self, *, verb: str | None = None, resource: str | None = None, allowed: bool | None = None) -> int:
        return sum(
            1 for r in self.records
            if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
            and (allowed is None or r.allowed == allowed)
        )  # fmt: skip

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
