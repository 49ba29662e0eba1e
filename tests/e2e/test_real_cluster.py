"""The kubernetes driver, unchanged, against a real cluster (kind, EKS: README, "Running against kind or EKS").

Runs only when DRILL_TEST_KUBECONFIG names a kubeconfig (the drill runner's own, so its RBAC is what is
tested); reported as skipped otherwise. DRILL_TEST_CONTEXT picks a context (default: the kubeconfig's
current one), DRILL_TEST_NAMESPACE the namespace (default trading-staging). Read-only, except with
DRILL_TEST_DESTRUCTIVE=1: then one API pod is deleted and the Deployment must replace it.

Marked ``real_cluster``: it is a check of a team's cluster, not coverage of the driver (the driver's
tests run against ``drillbit.testing.kubeapi`` under the drill runner's Role, every time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.core.errors import ConfigError
from drillbit.targets import resolve_target
from drillbit.targets.kubernetes import KubernetesTarget

KUBECONFIG = os.environ.get("DRILL_TEST_KUBECONFIG", "")
NAMESPACE = os.environ.get("DRILL_TEST_NAMESPACE") or "trading-staging"
DESTRUCTIVE = os.environ.get("DRILL_TEST_DESTRUCTIVE") == "1"
NAME = "real-cluster"
WHOLE_AGAIN_S = 120.0
NO_CLUSTER = "DRILL_TEST_KUBECONFIG is not set: no real cluster to test against (README: Running against kind or EKS)"

pytestmark = [pytest.mark.slow, pytest.mark.real_cluster, pytest.mark.skipif(not KUBECONFIG, reason=NO_CLUSTER)]


def _context_and_server(kubeconfig: Path) -> tuple[str, str]:
    """The context to use and its cluster's server, read from the file itself (not through the driver)."""
    doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
    context = os.environ.get("DRILL_TEST_CONTEXT") or doc.get("current-context")
    if not context:
        pytest.fail(f"{kubeconfig} has no current-context: set DRILL_TEST_CONTEXT")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters") or []}
    if context not in contexts:
        pytest.fail(f"{kubeconfig} has no context {context!r} (has: {', '.join(contexts)})")
    return context, str(clusters[contexts[context]["cluster"]]["server"])


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, Any]:
    """The target's drill.yaml entry, written to tmp_path/drill.yaml with the server recorded."""
    kubeconfig = Path(KUBECONFIG).expanduser().resolve()
    context, server = _context_and_server(kubeconfig)
    entry = {"kind": "kubernetes", "kubeconfig": str(kubeconfig), "context": context, "namespace": NAMESPACE,
             "server": server}  # fmt: skip
    (tmp_path / "drill.yaml").write_text(yaml.safe_dump({"targets": {NAME: entry}}), encoding="utf-8")
    return entry


@pytest.fixture
def target(cluster: dict[str, Any], tmp_path: Path) -> KubernetesTarget:
    t = resolve_target(NAME, config=tmp_path / "drill.yaml", state_dir=tmp_path / "state")
    assert isinstance(t, KubernetesTarget)
    return t


def _api_pods(target: KubernetesTarget) -> list[Any]:
    """The API's pods as the cluster lists them, read apart from the driver's own counting."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=target.spec.kubeconfig, context=target.spec.context)
    listed = client.CoreV1Api(api).list_namespaced_pod(target.namespace, label_selector=target.spec.api_selector)
    pods: list[Any] = listed.items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def test_the_identity_check_passes_and_refuses_another_server(cluster: dict[str, Any], tmp_path: Path) -> None:
    target = resolve_target(NAME, config=tmp_path / "drill.yaml", state_dir=tmp_path / "state")
    assert isinstance(target, KubernetesTarget)
    assert (target.spec.context, target.namespace) == (cluster["context"], NAMESPACE)

    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(yaml.safe_dump({"targets": {NAME: {**cluster, "server": "https://203.0.113.1:6443"}}}))
    with pytest.raises(ConfigError, match="a different cluster"):
        resolve_target(NAME, config=elsewhere, state_dir=tmp_path / "state")


def test_replicas_per_zone_span_two_zones_and_count_every_pod(target: KubernetesTarget) -> None:
    counts = target.replicas()
    pods = _api_pods(target)
    zones = {z for z, c in counts.items() if c["desired"] > 0 and z != "unscheduled"}
    assert "unknown" not in zones, f"API pods on nodes without {target.spec.zone_label}: {counts}"
    assert len(zones) >= 2, f"the API's pods are in {sorted(zones)}: a zone loss needs two zones; {counts}"
    assert sum(c["desired"] for z, c in counts.items() if z != "unscheduled") == len(pods), counts
    assert sorted(n for c in counts.values() for n in c["ready_ids"]) == sorted(
        p.metadata.name for p in pods if _is_ready(p)), counts  # fmt: skip


def test_the_target_is_whole_and_settled(target: KubernetesTarget) -> None:
    assert target.whole(), f"not whole (every API pod ready, a database primary, nothing cordoned): " \
                           f"{target.replicas()}, primary in {target.primary_region()}"  # fmt: skip
    assert target.settled(), "whole, but the API Deployment holds more replicas than its HPA's minimum (load?)"


def test_the_fingerprint_names_the_cluster_and_the_deployment(target: KubernetesTarget,
                                                              cluster: dict[str, Any]) -> None:  # fmt: skip
    fp = target.fingerprint()
    assert {k: fp[k] for k in ("context", "namespace", "deployment")} == {
        "context": cluster["context"], "namespace": NAMESPACE, "deployment": target.spec.api_deployment}  # fmt: skip
    assert fp["server"].rstrip("/") == cluster["server"].rstrip("/")
    assert isinstance(fp["generation"], int) and fp["generation"] >= 1
    assert fp["images"] and all(isinstance(i, str) and i for i in fp["images"])


@pytest.mark.skipif(not DESTRUCTIVE, reason="DRILL_TEST_DESTRUCTIVE=1 is not set: no pod is killed")
def test_a_killed_pod_lands_and_the_target_is_whole_again(target: KubernetesTarget) -> None:
    assert target.whole(), f"not whole before the kill: nothing is killed on a broken cluster: {target.replicas()}"
    deadline = time.monotonic() + WHOLE_AGAIN_S
    result = target.kill_replicas(count=1)
    assert result["landed"], result
    assert len(result["killed"]) == 1, result

    while not target.whole():
        assert time.monotonic() < deadline, f"not whole {WHOLE_AGAIN_S:.0f} s after the kill: {target.replicas()}"
        time.sleep(1.0)
    assert result["killed"][0] not in {p.metadata.name for p in _api_pods(target)}
