"""The Kubernetes driver against a Kubernetes API served over real HTTP (drillbit.testing.kubeapi),
through a kubeconfig, under the drill runner's own RBAC Role (infra/k8s): every fault is read back
from the cluster, and every call the driver makes is one the Role grants."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.core.errors import ConfigError
from drillbit.targets import resolve_target
from drillbit.targets.kubernetes import KubernetesTarget
from drillbit.testing.kubeapi import FakeKubeAPI, Policy, Query
from drillbit.testing.kubeapi.sim import PODS, Simulator

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "infra" / "k8s" / "base" / "drill-runner-rbac.yaml"
NS = "trading-staging"
API = {"app.kubernetes.io/name": "trading-api"}
DB = {"app.kubernetes.io/name": "trading-db"}
ZONE = "topology.kubernetes.io/zone"


class Cluster(Simulator):
    """The simulator, plus Patroni's part: the primary's pod deleted, a replica is promoted."""

    def on_delete_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        if (pod["metadata"].get("labels") or {}).get("role") == "master":
            self._later(0.1, self._promote, namespace)
        super().on_delete_pod(namespace, name, pod)

    def _promote(self, namespace: str) -> None:
        pods = self.store.list(PODS, Query(namespace))[0]
        pods = [p for p in pods if p["metadata"]["labels"].get("role") == "replica"]
        name = pods[0]["metadata"]["name"]
        self.store.update(PODS, namespace, name, lambda p: {
            **p, "metadata": {**p["metadata"], "labels": {**p["metadata"]["labels"], "role": "master"}}})  # fmt: skip


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    server = FakeKubeAPI(policy=Policy.from_file(RBAC))
    sim = Cluster(server.store)
    server.backend = sim
    for node, zone in (("node-a1", "zone-a"), ("node-a2", "zone-a"), ("node-b1", "zone-b"), ("node-b2", "zone-b")):
        sim.add_node(node, {ZONE: zone})
    sim.add_deployment(NS, "trading-api", replicas=4, image="registry.example/trading-api:1", labels=API)
    sim.add_pdb(NS, "trading-api", API, max_unavailable=1)
    for i, role in enumerate(("master", "replica")):
        server.store.create(PODS, {
            "metadata": {"name": f"trading-db-{i}", "labels": {**DB, "role": role}},
            "spec": {"nodeName": f"node-{'ab'[i]}1", "containers": [{"name": "postgres", "image": "patroni:4"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }, namespace=NS)  # fmt: skip
    with server:
        yield server
    sim.close()


def _drill_yaml(tmp_path: Path, api: FakeKubeAPI, **spec: Any) -> Path:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", context="staging", namespace=NS)
    target = {"kind": "kubernetes", "context": "staging", "kubeconfig": str(kubeconfig), "namespace": NS,
              "server": api.url, **spec}  # fmt: skip
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump({"targets": {"staging": target}}))
    return path


@pytest.fixture
def target(api: FakeKubeAPI, tmp_path: Path) -> KubernetesTarget:
    t = resolve_target("staging", config=_drill_yaml(tmp_path, api), state_dir=tmp_path / "state")
    assert isinstance(t, KubernetesTarget)
    return t


def _wait(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_replicas_are_counted_per_zone_from_the_pods_and_their_nodes(target: KubernetesTarget) -> None:
    counts = target.replicas()
    assert {z: (c["desired"], c["ready"]) for z, c in counts.items()} == {"zone-a": (2, 2), "zone-b": (2, 2)}
    assert target.whole() and target.settled() and target.primary_region() == "zone-a"


def test_killed_pods_are_read_back_gone_and_their_replacements_are_new_identities(
    api: FakeKubeAPI, target: KubernetesTarget
) -> None:
    before = {i for c in target.replicas().values() for i in c["ready_ids"]}
    result = target.kill_replicas(count=2)
    assert result["landed"] and len(result["killed"]) == 2 and set(result["killed"]) <= before
    assert _wait(target.whole)
    after = {i for c in target.replicas().values() for i in c["ready_ids"]}
    assert len(after) == 4 and not set(result["killed"]) & after
    assert api.audit.count(verb="delete", resource="pods") == 2


def test_a_lost_zone_is_cordoned_and_drained_through_evictions_and_healing_uncordons_it(
    api: FakeKubeAPI, target: KubernetesTarget
) -> None:
    result = target.lose_region("zone-a")
    assert result["landed"] and result["cordoned"] == ["node-a1", "node-a2"]
    counts = target.replicas()
    assert counts["zone-a"]["ready"] == 0 and counts["zone-b"]["ready"] == 4, counts
    assert api.audit.count(verb="create", resource="pods/eviction") >= 2  # one at a time, under the PDB
    assert not target.whole()  # nodes left cordoned by drillbit: something to heal
    healed = target.heal()
    assert healed["whole"] and healed["restored"] == ["node-a1", "node-a2"] and target._cordoned() == []


def test_a_restored_zone_is_uncordoned(target: KubernetesTarget) -> None:
    target.lose_region("zone-b")
    assert target.restore_region("zone-b") == {"uncordoned": ["node-b1", "node-b2"], "landed": True}


def test_a_rolling_update_lands_when_every_pod_runs_the_new_tag_and_is_ready(target: KubernetesTarget) -> None:
    result = target.roll_out("2")
    assert result["landed"] and result["images"] == {"trading-api": "registry.example/trading-api:2"}
    assert target.fingerprint()["images"] == ["registry.example/trading-api:2"]


def test_a_database_failover_lands_when_another_pod_leads(target: KubernetesTarget) -> None:
    result = target.fail_over_database()
    assert result == {"old_primary": "trading-db-0", "landed": True}
    assert target.primary_region() == "zone-b"


def test_every_call_of_every_fault_is_one_the_drill_runner_role_grants(
    api: FakeKubeAPI, target: KubernetesTarget
) -> None:
    target.kill_replicas(percent=50)
    target.lose_region("zone-a")
    target.heal()
    target.roll_out("3")
    target.fail_over_database()
    assert target.settled()
    assert api.audit.count(allowed=False) == 0, [r for r in api.audit.records if not r.allowed]
    assert target.api_calls == len(api.audit.records)
    print(f"API calls for kill + zone loss + heal + roll + failover: {target.api_calls}")


def test_a_cluster_whose_server_is_not_the_recorded_one_is_refused(api: FakeKubeAPI, tmp_path: Path) -> None:
    config = _drill_yaml(tmp_path, api, server="https://staging.example.internal:6443")
    with pytest.raises(ConfigError, match=r"targets\.staging\.server: the context 'staging' points at http://127"):
        resolve_target("staging", config=config)


def test_a_system_namespace_is_refused(api: FakeKubeAPI, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'kube-system' is a system namespace"):
        resolve_target("staging", config=_drill_yaml(tmp_path, api, namespace="kube-system"))


def test_a_target_without_a_namespace_is_refused_before_any_call(api: FakeKubeAPI, tmp_path: Path) -> None:
    config = _drill_yaml(tmp_path, api)
    data = yaml.safe_load(config.read_text())
    del data["targets"]["staging"]["namespace"]
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"targets\.staging\.namespace: required"):
        resolve_target("staging", config=config)
    assert api.audit.count() == 0


def test_chaosk8s_activities_reach_the_targets_context_not_the_kubeconfigs_current_one(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kubeconfig whose current context is another cluster: with the target's activity_env, the
    plain chaosk8s probe a k8s experiment uses asks the target's API server (its audit sees it)."""
    from chaosk8s.deployment.probes import deployment_available_and_healthy

    config = _drill_yaml(tmp_path, api)
    kubeconfig = Path(yaml.safe_load(config.read_text())["targets"]["staging"]["kubeconfig"])
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"].append({"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:9"}})
    doc["contexts"].append({"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "drill-runner"}})
    doc["current-context"] = "elsewhere"
    kubeconfig.write_text(yaml.safe_dump(doc))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    target = resolve_target("staging", config=config)
    before = api.audit.count(resource="deployments")
    with target.activity_scope():
        assert deployment_available_and_healthy("trading-api", ns=NS) is True
    assert api.audit.count(resource="deployments") == before + 1
    assert "KUBECONFIG" not in os.environ  # put back as it was
