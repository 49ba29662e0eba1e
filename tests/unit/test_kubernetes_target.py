"""The Kubernetes driver against a Kubernetes API served over real HTTP (drillbit.testing.kubeapi),
through a kubeconfig, under the drill runner's own RBAC Role (infra/k8s): every fault is read back
from the cluster, and every call the driver makes is one the Role grants."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from drillbit import faults
from drillbit.core.errors import ConfigError
from drillbit.targets import resolve_target
from drillbit.targets.kubernetes import (
    PREVIOUS_SELECTOR,
    ROLLING_FROM,
    SWITCHED_BY,
    KubeApiError,
    KubernetesTarget,
    image_repo,
)
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.testing.kubeapi import FakeKubeAPI, Policy, Query
from drillbit.testing.kubeapi.resources import find
from drillbit.testing.kubeapi.sim import PODS, SERVICES, Simulator

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "infra" / "k8s" / "base" / "drill-runner-rbac.yaml"
NS = "trading-staging"
API = {"app.kubernetes.io/name": "trading-api"}
DB = {"app.kubernetes.io/name": "trading-db"}
ZONE = "topology.kubernetes.io/zone"
# blue-green as teams run it: one Deployment per colour, each selecting its own colour's pods; the
# Service's selector names the live one (trading-api is blue, live; trading-api-green is idle)
BLUE = {**API, "track": "blue"}
GREEN = {**API, "track": "green"}
HPAS = find("autoscaling", "v2", "horizontalpodautoscalers")


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


@contextlib.contextmanager
def fake_cluster(policy: Policy, *, blue_green: bool = False, green_replicas: int = 2,
                 hpa_min: int | None = None) -> Iterator[FakeKubeAPI]:  # fmt: skip
    """Two zones of two nodes, the API's Deployment (4 pods) under a PDB, a Patroni primary and
    replica; with ``blue_green``, the API is blue behind a Service selecting blue, and a green
    Deployment of ``green_replicas`` idles beside it; with ``hpa_min``, an HPA holds that floor."""
    server = FakeKubeAPI(policy=policy)
    sim = Cluster(server.store)
    server.backend = sim
    for node, zone in (("node-a1", "zone-a"), ("node-a2", "zone-a"), ("node-b1", "zone-b"), ("node-b2", "zone-b")):
        sim.add_node(node, {ZONE: zone})
    labels = BLUE if blue_green else API
    sim.add_deployment(NS, "trading-api", replicas=4, image="registry.example/trading-api:1", labels=labels)
    sim.add_pdb(NS, "trading-api", API, max_unavailable=1)
    if blue_green:
        sim.add_deployment(NS, "trading-api-green", replicas=green_replicas, image="registry.example/trading-api:2",
                           labels=GREEN)  # fmt: skip
        sim.add_service(NS, "trading-api", BLUE)
    if hpa_min is not None:
        assert HPAS is not None
        server.store.create(HPAS, {"metadata": {"name": "trading-api"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "trading-api"},
            "minReplicas": hpa_min, "maxReplicas": 2 * hpa_min}}, namespace=NS)  # fmt: skip
    for i, role in enumerate(("master", "replica")):
        server.store.create(PODS, {
            "metadata": {"name": f"trading-db-{i}", "labels": {**DB, "role": role}},
            "spec": {"nodeName": f"node-{'ab'[i]}1", "containers": [{"name": "postgres", "image": "patroni:4"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }, namespace=NS)  # fmt: skip
    try:
        with server:
            yield server
    finally:
        sim.close()


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with fake_cluster(Policy.from_file(RBAC)) as server:
        yield server


@pytest.fixture
def bg_api() -> Iterator[FakeKubeAPI]:
    with fake_cluster(Policy.from_file(RBAC), blue_green=True) as server:
        yield server


def drill_yaml(tmp_path: Path, api: FakeKubeAPI, **spec: Any) -> Path:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", context="staging", namespace=NS)
    target = {"kind": "kubernetes", "context": "staging", "kubeconfig": str(kubeconfig), "namespace": NS,
              "server": api.url, **spec}  # fmt: skip
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump({"targets": {"staging": target}}))
    return path


def kube_target(api: FakeKubeAPI, tmp_path: Path) -> KubernetesTarget:
    """The target as a drill process resolves it from drill.yaml (a later process: call it again)."""
    t = resolve_target("staging", config=drill_yaml(tmp_path, api), state_dir=tmp_path / "state")
    assert isinstance(t, KubernetesTarget)
    return t


@pytest.fixture
def target(api: FakeKubeAPI, tmp_path: Path) -> KubernetesTarget:
    return kube_target(api, tmp_path)


@pytest.fixture
def bg_target(bg_api: FakeKubeAPI, tmp_path: Path) -> KubernetesTarget:
    return kube_target(bg_api, tmp_path)


def _service(api: FakeKubeAPI) -> dict[str, Any]:
    assert SERVICES is not None
    return api.store.get(SERVICES, NS, "trading-api")


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


def test_a_roll_that_landed_leaves_no_mark_and_heal_leaves_it_rolled(target: KubernetesTarget) -> None:
    assert target.roll_out("2")["landed"]
    assert ROLLING_FROM not in (target._deployment().metadata.annotations or {})
    assert target.heal()["restored"] == []
    assert target.fingerprint()["images"] == ["registry.example/trading-api:2"]


def _crash_mid_roll(target: KubernetesTarget, before: str, to: str, now: str | None = None) -> None:
    """What a drill killed mid-roll leaves: the mark (from ``before`` to ``to``) and the template at
    ``now`` (``to``, or what someone deployed since)."""
    target._mark_rolling(json.dumps({"from": {"trading-api": before}, "to": {"trading-api": to}}))
    containers = [{"name": "trading-api", "image": now or to}]
    target._apps().patch_namespaced_deployment("trading-api", NS, {"spec": {"template": {"spec": {
        "containers": containers}}}})  # fmt: skip


def test_a_roll_killed_midway_is_rolled_back_by_the_next_heal(api: FakeKubeAPI, tmp_path: Path) -> None:
    """The drill died after patching the image (the mark is on the Deployment, the roll unfinished):
    a later process's heal rolls it back to the images before, as ``kubectl rollout undo`` would."""
    crashed = resolve_target("staging", config=drill_yaml(tmp_path, api))
    before = crashed.fingerprint()["images"]
    _crash_mid_roll(crashed, before[0], "registry.example/x:9")
    later = resolve_target("staging", config=drill_yaml(tmp_path, api))
    healed = later.heal()
    assert healed["restored"] == ["deployment/trading-api"] and healed["whole"], healed
    assert later.fingerprint()["images"] == before
    assert ROLLING_FROM not in (later._deployment().metadata.annotations or {})
    pods = later._pods("app.kubernetes.io/name=trading-api")
    assert pods and {c.image for p in pods for c in p.spec.containers} == set(before)


def test_heal_leaves_a_deploy_made_after_a_crashed_roll_alone(api: FakeKubeAPI, tmp_path: Path) -> None:
    """The drill died mid-roll, then the pipeline deployed another version: that deploy stands."""
    target = resolve_target("staging", config=drill_yaml(tmp_path, api))
    before = target.fingerprint()["images"]
    _crash_mid_roll(target, before[0], "registry.example/x:9", now="registry.example/y:10")
    assert target.undo_roll_out()["undone"] is None
    assert target.fingerprint()["images"] == ["registry.example/y:10"]
    assert ROLLING_FROM not in (target._deployment().metadata.annotations or {})


def test_an_image_pinned_by_digest_rolls_to_the_tag(target: KubernetesTarget) -> None:
    assert image_repo("registry.example/api@sha256:" + "a" * 64) == "registry.example/api"
    assert image_repo("localhost:5000/api:1.4") == "localhost:5000/api" and image_repo("api") == "api"


def test_a_database_failover_lands_when_another_pod_leads(target: KubernetesTarget) -> None:
    result = target.fail_over_database()
    assert result == {"old_primary": "trading-db-0", "new_primary": "trading-db-1", "landed": True}
    assert target.primary_region() == "zone-b"


def test_a_zone_drain_the_role_refuses_fails_at_once_instead_of_retrying(tmp_path: Path) -> None:
    """Only a disruption budget's 429 (or a pod already gone, or the API server failing) is worth
    retrying; a 403 would have spun the drain for its whole 300 s wait."""
    policy = Policy(tuple(r for r in Policy.from_file(RBAC).rules if "pods/eviction" not in r.resources))
    with fake_cluster(policy) as api:
        started = time.monotonic()
        with pytest.raises(KubeApiError) as err:
            kube_target(api, tmp_path).lose_region("zone-a")
        assert err.value.status == 403 and time.monotonic() - started < 10
        assert api.audit.count(verb="create", resource="pods/eviction", allowed=False) == 1


# -- blue-green ----------------------------------------------------------------------------------


def test_a_blue_green_switch_lands_when_the_service_reads_back_selecting_the_idle_colours_ready_pods(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    result = bg_target.switch_traffic()
    assert result["landed"] and (result["from"], result["to"]) == ("blue", "green")
    assert _service(bg_api)["spec"]["selector"] == GREEN == result["selector"]
    assert len(result["ready_pods"]) == 2 and all(n.startswith("trading-api-green-") for n in result["ready_pods"])


def test_a_switched_service_keeps_its_previous_selector_and_the_target_is_not_whole_until_switched_back(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    bg_target.switch_traffic(to="green")
    annotations = _service(bg_api)["metadata"]["annotations"]
    assert json.loads(annotations[PREVIOUS_SELECTOR]) == BLUE and annotations[SWITCHED_BY] == bg_target.cordon_mark
    assert not bg_target.whole()


def test_switching_back_restores_the_previous_selector_and_removes_the_mark(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    bg_target.switch_traffic()
    back = bg_target.switch_traffic_back()
    assert back["landed"] and back["restored"] == BLUE and len(back["ready_pods"]) == 4
    service = _service(bg_api)
    assert service["spec"]["selector"] == BLUE and not service["metadata"].get("annotations")
    assert bg_target.whole()


def test_switching_back_when_nothing_was_switched_changes_nothing(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    assert bg_target.switch_traffic_back() == {"service": "trading-api", "restored": None, "landed": True}
    assert bg_api.audit.count(verb="patch", resource="services") == 0


def test_a_second_switch_keeps_the_first_selector_as_the_one_to_restore(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    bg_target.switch_traffic(to="green")
    again = bg_target.switch_traffic(to="blue")
    assert again["landed"] and again["previous_selector"] == BLUE
    bg_target.switch_traffic(to="green")
    assert bg_target.switch_traffic_back()["restored"] == BLUE and _service(bg_api)["spec"]["selector"] == BLUE


def test_a_later_process_heals_a_service_a_crashed_drill_left_switched(bg_api: FakeKubeAPI, tmp_path: Path) -> None:
    assert kube_target(bg_api, tmp_path).switch_traffic()["landed"]  # the drill process, which then dies
    healed = kube_target(bg_api, tmp_path).heal()  # a later invocation, from the Service's annotation alone
    assert healed["whole"] and healed["restored"] == ["service/trading-api"]
    assert _service(bg_api)["spec"]["selector"] == BLUE


def test_a_switch_to_a_colour_without_ready_pods_does_not_land_and_leaves_the_service_alone(tmp_path: Path) -> None:
    with fake_cluster(Policy.from_file(RBAC), blue_green=True, green_replicas=0) as api:
        result = kube_target(api, tmp_path).switch_traffic()
        assert result["landed"] is False and "no ready pod matches" in result["reason"]
        assert _service(api)["spec"]["selector"] == BLUE and not _service(api)["metadata"].get("annotations")
        assert api.audit.count(verb="patch", resource="services") == 0


def test_a_service_whose_selector_names_no_colour_is_refused(api: FakeKubeAPI, target: KubernetesTarget) -> None:
    Simulator(api.store).add_service(NS, "trading-api", API)
    with pytest.raises(ConfigError, match=r"selector .* names no track label"):
        target.switch_traffic()
    assert api.audit.count(verb="patch", resource="services") == 0


def test_a_rolling_update_of_the_live_colour_waits_for_its_own_pods_not_the_idle_colours(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    result = bg_target.roll_out("3")
    assert result["landed"] and result["images"] == {"trading-api": "registry.example/trading-api:3"}
    green = [p["spec"]["containers"][0]["image"] for p in bg_api.store.list(PODS, Query(NS))[0]
             if p["metadata"]["labels"].get("track") == "green"]  # fmt: skip
    assert green == ["registry.example/trading-api:2"] * 2


def test_the_portable_switch_and_its_rollback_reach_a_kubernetes_target(
    bg_api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILL_CONFIG", str(drill_yaml(tmp_path, bg_api)))
    configuration = {"drillbit_target": "staging"}
    assert faults.switch_traffic(configuration=configuration)["landed"]
    assert _service(bg_api)["spec"]["selector"] == GREEN
    assert faults.switch_traffic_back(configuration=configuration)["restored"] == BLUE
    assert _service(bg_api)["spec"]["selector"] == BLUE


def test_the_blue_green_action_refuses_a_target_without_a_traffic_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = SandboxTarget(cast(Any, None))  # refused before the sandbox is touched
    monkeypatch.setattr(faults, "resolve_target", lambda name, state_dir=None: sandbox)
    with pytest.raises(ConfigError, match=r"blue-green needs a kubernetes target .*'sandbox' is a sandbox target"):
        faults.switch_traffic(to="green")
    with pytest.raises(ConfigError, match="blue-green needs a kubernetes target"):
        faults.switch_traffic_back()


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
    config = drill_yaml(tmp_path, api, server="https://staging.example.internal:6443")
    with pytest.raises(ConfigError, match=r"targets\.staging\.server: the context 'staging' points at http://127"):
        resolve_target("staging", config=config)


def test_a_system_namespace_is_refused(api: FakeKubeAPI, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'kube-system' is a system namespace"):
        resolve_target("staging", config=drill_yaml(tmp_path, api, namespace="kube-system"))


def test_a_target_without_a_namespace_is_refused_before_any_call(api: FakeKubeAPI, tmp_path: Path) -> None:
    config = drill_yaml(tmp_path, api)
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

    config = drill_yaml(tmp_path, api)
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


def test_a_server_side_dry_run_checks_every_kind_of_change_and_changes_nothing(
    bg_api: FakeKubeAPI, bg_target: KubernetesTarget
) -> None:
    api, target = bg_api, bg_target
    before = {p.metadata.name for p in target._pods("app.kubernetes.io/name=trading-api")}
    rows = target.dry_run()
    assert [r["change"].split(" (")[1].rstrip(")") for r in rows] == [
        "kill_replicas", "lose_region", "lose_region", "roll_out", "switch_traffic"]  # fmt: skip
    assert all(r["ok"] for r in rows), rows
    assert {p.metadata.name for p in target._pods("app.kubernetes.io/name=trading-api")} == before
    assert not target._cordoned()
    dry = [r for r in api.audit.records if "dryRun=All" in r.path or r.verb in ("delete", "patch", "create")]
    assert len(dry) == 5, dry


def test_a_dry_run_the_role_refuses_is_reported_not_raised(tmp_path: Path) -> None:
    """A Role without pods/eviction: the dry run says the zone drain would be refused."""
    docs = [d for d in yaml.safe_load_all(RBAC.read_text())]
    for d in docs:
        if d["kind"] == "Role":
            d["rules"] = [r for r in d["rules"] if r["resources"] != ["pods/eviction"]]
    with fake_cluster(Policy.from_documents(docs), blue_green=True) as server:
        rows = resolve_target("staging", config=drill_yaml(tmp_path, server)).dry_run()
    refused = [r for r in rows if not r["ok"]]
    assert [r["change"] for r in refused] == ["evict a pod (lose_region)"] and "403" in refused[0]["error"]
