"""The sandbox-k8s API's RBAC: exactly the Roles the manifests bind to the drill runner of the
namespace they deploy to (the sandbox's processes are exercised in tests/e2e/test_sandbox_k8s.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillbit.core.errors import ConfigError
from drillbit.manifests.render import render
from drillbit.testing.kubeapi.rbac import RequestAttributes
from drillbit.testing.sandbox_k8s.bridge import runner_policy

ROOT = Path(__file__).resolve().parents[2]
NS = "trading-staging"


def _can(policy: object, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    return policy.allows(RequestAttributes(verb, group, resource, "", namespace, None))  # type: ignore[attr-defined]


def test_the_staging_overlay_grants_its_drill_runner_pod_deletes_and_node_cordons() -> None:
    policy = runner_policy(render(ROOT / "infra" / "k8s" / "overlays" / "staging", origins=False).objects, NS)
    assert _can(policy, "delete", "", "pods", NS) and _can(policy, "patch", "", "nodes", None)
    assert not _can(policy, "delete", "apps", "deployments", NS)


def test_a_binding_to_the_runner_of_another_namespace_grants_nothing() -> None:
    docs = list(yaml.safe_load_all("""
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: drill-runner, namespace: trading-staging}
rules: [{apiGroups: [""], resources: [pods], verbs: [delete]}]
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: drill-runner, namespace: trading-staging}
subjects: [{kind: ServiceAccount, name: drill-runner, namespace: trading}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: drill-runner}
"""))
    with pytest.raises(ConfigError, match="bound to the ServiceAccount trading-staging/drill-runner"):
        runner_policy(docs, NS)
    docs[1]["subjects"][0].pop("namespace")  # a RoleBinding's subject defaults to the binding's namespace
    assert _can(runner_policy(docs, NS), "delete", "", "pods", NS)
