"""The fake Kubernetes API (drillbit.testing.kubeapi) through the official ``kubernetes`` client and
chaosk8s, over real HTTP on loopback, with the drill runner's own RBAC role enforced."""

from __future__ import annotations

import json
import queue
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api, PolicyV1Api, V1Eviction, V1ObjectMeta
from kubernetes.client.rest import ApiException

from drillbit.testing.kubeapi import FakeKubeAPI, LabelSelector, Policy, Store
from drillbit.testing.kubeapi.patching import JSON_PATCH, STRATEGIC_MERGE_PATCH, apply_patch
from drillbit.testing.kubeapi.rbac import RequestAttributes
from drillbit.testing.kubeapi.resources import find
from drillbit.testing.kubeapi.sim import PODS, Simulator

RBAC = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "base" / "drill-runner-rbac.yaml"
NS = "trading"
CONTEXT = "drill-fake"


@pytest.fixture
def global_client_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that loads the kubeconfig into the client's global default (load_kube_config, chaosk8s)
    leaves nothing behind: the default, and the class attributes chaosk8s overwrites, come back."""
    monkeypatch.setattr(Configuration, "_default", None)
    monkeypatch.setattr(Configuration, "debug", Configuration.__dict__["debug"])
    monkeypatch.setattr(Configuration, "verify_ssl", False, raising=False)


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    server = FakeKubeAPI(policy=Policy.from_file(RBAC))
    sim = Simulator(server.store)
    server.backend = sim
    sim.add_deployment(NS, "api", replicas=3)
    sim.add_node("node-a", {"topology.kubernetes.io/zone": "zone-a"})
    with server:
        yield server
    sim.close()


@pytest.fixture
def kubeconfig(api: FakeKubeAPI, tmp_path: Path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig", context=CONTEXT, namespace=NS)


def _client(kubeconfig: Path) -> ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig), context=CONTEXT)


@pytest.fixture
def client(kubeconfig: Path) -> Iterator[ApiClient]:
    with _client(kubeconfig) as c:
        yield c


def _names(pods: Any) -> list[str]:
    return [p.metadata.name for p in pods.items]


def _status(err: ApiException) -> dict[str, Any]:
    body = json.loads(err.body)
    assert body["kind"] == "Status"
    return body


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


# -- reading ----------------------------------------------------------------------------------------


def test_the_official_client_lists_pods_by_label_selector_through_the_kubeconfig(
    api: FakeKubeAPI, kubeconfig: Path, global_client_config: None
) -> None:
    Simulator(api.store).add_deployment(NS, "db", replicas=2, labels={"app": "db", "tier": "data"})
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), context=CONTEXT)
    core = CoreV1Api()
    api_pods = core.list_namespaced_pod(NS, label_selector="app=api")
    assert len(api_pods.items) == 3
    assert all(p.metadata.labels["app"] == "api" for p in api_pods.items)
    assert len(core.list_namespaced_pod(NS, label_selector="app in (api,db),tier!=data").items) == 3
    assert len(core.list_namespaced_pod(NS, label_selector="tier,!missing").items) == 2
    assert core.list_namespaced_pod("elsewhere", label_selector="app=api").items == []


def test_pods_are_listed_by_name_and_phase_field_selectors(client: ApiClient) -> None:
    core = CoreV1Api(client)
    first = _names(core.list_namespaced_pod(NS))[0]
    assert _names(core.list_namespaced_pod(NS, field_selector=f"metadata.name={first}")) == [first]
    assert len(core.list_namespaced_pod(NS, field_selector="status.phase=Running").items) == 3
    assert len(core.list_namespaced_pod(NS, field_selector=f"status.phase=Running,metadata.name!={first}").items) == 2


def test_the_role_reads_deployments_nodes_and_discovery(client: ApiClient) -> None:
    apps = AppsV1Api(client)
    deployment = apps.read_namespaced_deployment("api", NS)
    assert deployment.spec.replicas == 3 and deployment.status.ready_replicas == 3
    assert [n.metadata.name for n in CoreV1Api(client).list_node().items] == ["node-a"]
    groups = {g.name for g in kubernetes.client.ApisApi(client).get_api_versions().groups}
    assert {"apps", "autoscaling", "policy", "events.k8s.io"} <= groups
    assert kubernetes.client.VersionApi(client).get_code().git_version.startswith("v1.")


def test_the_role_reads_autoscalers_and_core_events_but_not_events_k8s_io(api: FakeKubeAPI, client: ApiClient) -> None:
    hpas, core_events, events = find("autoscaling", "v2", "horizontalpodautoscalers"), find("", "v1", "events"), find(
        "events.k8s.io", "v1", "events")  # fmt: skip
    assert hpas is not None and core_events is not None and events is not None
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    hpa = {"metadata": {"name": "api"}, "spec": {"scaleTargetRef": target, "maxReplicas": 6}}
    api.store.create(hpas, hpa, namespace=NS)
    pod = {"kind": "Pod", "name": "api-1", "namespace": NS}
    api.store.create(core_events, {"metadata": {"name": "api-1.1"}, "involvedObject": pod, "reason": "Killing"},
                     namespace=NS)  # fmt: skip
    api.store.create(events, {"metadata": {"name": "api-1.1"}, "eventTime": "2024-01-01T00:00:00.000000Z",
                              "regarding": pod, "reason": "Killing"}, namespace=NS)  # fmt: skip
    listed = kubernetes.client.AutoscalingV2Api(client).list_namespaced_horizontal_pod_autoscaler(NS)
    assert [h.spec.max_replicas for h in listed.items] == [6]
    assert [e.reason for e in CoreV1Api(client).list_namespaced_event(NS).items] == ["Killing"]
    with pytest.raises(ApiException) as err:
        kubernetes.client.EventsV1Api(client).list_namespaced_event(NS)
    assert err.value.status == 403


# -- deleting, and watching the replacement ------------------------------------------------------------


def test_a_deleted_pod_is_replaced_and_a_watch_sees_the_replacement_arrive_and_turn_ready(
    kubeconfig: Path, client: ApiClient
) -> None:
    core = CoreV1Api(client)
    listed = core.list_namespaced_pod(NS, label_selector="app=api")
    victim = listed.items[0].metadata.name
    seen: queue.Queue[tuple[float, str, str, bool]] = queue.Queue()

    def watch_pods() -> None:
        with _client(kubeconfig) as own:
            w = watch.Watch()
            stream = w.stream(CoreV1Api(own).list_namespaced_pod, NS, label_selector="app=api",
                              resource_version=listed.metadata.resource_version, timeout_seconds=10)  # fmt: skip
            for event in stream:
                pod = event["object"]
                seen.put((time.monotonic(), event["type"], pod.metadata.name, _ready(pod)))
                if event["type"] == "MODIFIED" and _ready(pod):
                    w.stop()

    watcher = threading.Thread(target=watch_pods, daemon=True)
    watcher.start()
    deleted_at = time.monotonic()
    core.delete_namespaced_pod(victim, NS)
    watcher.join(timeout=10)
    events = list(seen.queue)
    assert [(kind, name == victim, ready) for _, kind, name, ready in events] == [
        ("DELETED", True, True), ("ADDED", False, False), ("MODIFIED", False, True),
    ]  # fmt: skip
    assert 0.04 < events[1][0] - deleted_at < 2.0  # the simulated controller's 50 ms, then loopback
    replacement = events[1][2]
    assert replacement.startswith(victim.rsplit("-", 1)[0] + "-")
    assert victim not in _names(core.list_namespaced_pod(NS)) and replacement in _names(core.list_namespaced_pod(NS))


def test_watch_events_reach_the_client_within_milliseconds_of_the_write(api: FakeKubeAPI, client: ApiClient) -> None:
    written: dict[int, float] = {}
    _, unsubscribe = api.store.watch(PODS, None, lambda ev: written.setdefault(ev.rv, time.monotonic()))
    name = _names(CoreV1Api(client).list_namespaced_pod(NS))[0]
    received: queue.Queue[tuple[int, float]] = queue.Queue()
    writes = 20

    def watch_pods() -> None:
        w = watch.Watch()
        stream = w.stream(CoreV1Api(client).list_namespaced_pod, NS, field_selector=f"metadata.name={name}",
                          resource_version=str(api.store.resource_version), timeout_seconds=10)  # fmt: skip
        for event in stream:
            received.put((int(event["object"].metadata.resource_version), time.monotonic()))
            if received.qsize() == writes:
                w.stop()

    watcher = threading.Thread(target=watch_pods, daemon=True)
    watcher.start()
    time.sleep(0.2)  # the stream is open (its events since the resourceVersion would replay anyway)
    for i in range(writes):
        tick = {"annotations": {"tick": str(i)}}
        api.store.update(PODS, NS, name, lambda pod, tick=tick: {**pod, "metadata": {**pod["metadata"], **tick}})
        time.sleep(0.02)
    watcher.join(timeout=10)
    unsubscribe()
    latencies = sorted(at - written[rv] for rv, at in received.queue)
    assert len(latencies) == writes
    print(f"watch latency, write to client receipt: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms over {writes} events")  # fmt: skip
    assert latencies[-1] < 0.5


def test_a_watch_ends_after_its_timeout_seconds(client: ApiClient) -> None:
    started = time.monotonic()
    stream = watch.Watch().stream(CoreV1Api(client).list_node, resource_version="999999", timeout_seconds=1)
    assert list(stream) == []
    assert 0.9 < time.monotonic() - started < 3.0


def test_a_watch_from_a_compacted_resource_version_gets_410(tmp_path: Path) -> None:
    store = Store(history=2)
    sim = Simulator(store)
    sim.add_deployment(NS, "api", replicas=3)  # more changes than the history keeps
    with FakeKubeAPI(store=store) as api, _client(api.write_kubeconfig(tmp_path / "kc")) as client:
        pods = CoreV1Api(client).list_namespaced_pod
        stream = watch.Watch().stream(pods, NS, resource_version="1", timeout_seconds=1)
        with pytest.raises(ApiException) as err:
            list(stream)
    assert err.value.status == 410


# -- patching ----------------------------------------------------------------------------------------


def test_patching_a_deployment_image_changes_its_template_and_generation(api: FakeKubeAPI, client: ApiClient) -> None:
    apps = AppsV1Api(client)
    body = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "trading-api:2"}]}}}}
    patched = apps.patch_namespaced_deployment("api", NS, body)
    assert patched.spec.template.spec.containers[0].image == "trading-api:2"
    stored = apps.read_namespaced_deployment("api", NS)
    assert [c.image for c in stored.spec.template.spec.containers] == ["trading-api:2"]
    assert stored.metadata.generation == 2
    assert api.audit.count(verb="patch", resource="deployments", allowed=True) == 1


def test_patching_a_deployments_replicas_scales_its_pods(client: ApiClient) -> None:
    AppsV1Api(client).patch_namespaced_deployment("api", NS, {"spec": {"replicas": 5}})
    deadline = time.monotonic() + 5
    while len(CoreV1Api(client).list_namespaced_pod(NS, field_selector="status.phase=Running").items) < 5:
        assert time.monotonic() < deadline, "the simulated controller did not scale out"
        time.sleep(0.05)


def test_patching_a_services_selector_switches_it(api: FakeKubeAPI, client: ApiClient) -> None:
    Simulator(api.store).add_service(NS, "api", {"app": "api", "color": "blue"})
    patched = CoreV1Api(client).patch_namespaced_service("api", NS, {"spec": {"selector": {"color": "green"}}})
    assert patched.spec.selector == {"app": "api", "color": "green"}
    assert patched.spec.ports[0].port == 80


def test_cordoning_a_node_marks_it_unschedulable_and_uncordoning_clears_it(client: ApiClient) -> None:
    core = CoreV1Api(client)
    assert core.patch_node("node-a", {"spec": {"unschedulable": True}}).spec.unschedulable is True
    assert core.list_node(field_selector="metadata.name=node-a").items[0].spec.unschedulable is True
    assert core.patch_node("node-a", {"spec": {"unschedulable": False}}).spec.unschedulable is False


# -- evictions under a PodDisruptionBudget ---------------------------------------------------------------


def _evict(client: ApiClient, name: str) -> None:
    body = V1Eviction(metadata=V1ObjectMeta(name=name, namespace=NS))
    CoreV1Api(client).create_namespaced_pod_eviction(name, NS, body)


def test_an_eviction_that_would_break_the_disruption_budget_gets_429(api: FakeKubeAPI, client: ApiClient) -> None:
    Simulator(api.store).add_pdb(NS, "api", {"app": "api"}, min_available=3)
    victim = _names(CoreV1Api(client).list_namespaced_pod(NS))[0]
    with pytest.raises(ApiException) as err:
        _evict(client, victim)
    assert err.value.status == 429
    status = _status(err.value)
    assert status["reason"] == "TooManyRequests" and status["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert victim in _names(CoreV1Api(client).list_namespaced_pod(NS))


def test_the_budget_counts_an_evicted_pod_as_missing_until_its_replacement_is_ready(
    api: FakeKubeAPI, client: ApiClient
) -> None:
    Simulator(api.store).add_pdb(NS, "api", {"app": "api"}, max_unavailable=1)
    core = CoreV1Api(client)
    first, second = _names(core.list_namespaced_pod(NS))[:2]
    _evict(client, first)
    with pytest.raises(ApiException) as err:
        _evict(client, second)  # 3 expected, 2 ready: one more would leave 1 of the 2 required
    assert err.value.status == 429
    deadline = time.monotonic() + 5
    while sum(map(_ready, core.list_namespaced_pod(NS).items)) < 3:
        assert time.monotonic() < deadline, "the evicted pod was not replaced"
        time.sleep(0.05)
    _evict(client, second)
    assert api.audit.count(verb="create", resource="pods/eviction") == 3


def test_the_api_policy_group_serves_disruption_budgets_to_an_unrestricted_caller(tmp_path: Path) -> None:
    with FakeKubeAPI() as api, _client(api.write_kubeconfig(tmp_path / "kc", namespace=NS)) as client:
        Simulator(api.store).add_pdb(NS, "api", {"app": "api"}, min_available=1)
        assert [p.metadata.name for p in PolicyV1Api(client).list_namespaced_pod_disruption_budget(NS).items] == ["api"]


# -- authentication and RBAC ---------------------------------------------------------------------------


def test_a_verb_the_role_does_not_grant_is_forbidden_with_a_status(api: FakeKubeAPI, client: ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        AppsV1Api(client).delete_namespaced_deployment("api", NS)  # the role: get, list, watch, patch
    assert err.value.status == 403
    status = _status(err.value)
    assert status["reason"] == "Forbidden" and status["details"]["kind"] == "deployments"
    with pytest.raises(ApiException) as err:
        CoreV1Api(client).delete_node("node-a")  # the cluster role: get, list, watch, patch
    assert err.value.status == 403
    assert AppsV1Api(client).read_namespaced_deployment("api", NS).metadata.name == "api"
    denied = [(r.verb, r.resource) for r in api.audit.records if not r.allowed]
    assert denied == [("delete", "deployments"), ("delete", "nodes")]


def test_a_role_grants_a_subresource_apart_from_its_resource() -> None:
    policy = Policy.from_file(RBAC)
    assert policy.allows(RequestAttributes("create", "", "pods", "eviction", NS, "p"))
    assert not policy.allows(RequestAttributes("create", "", "pods", "", NS))
    assert policy.allows(RequestAttributes("patch", "", "nodes", "", None, "node-a"))  # the ClusterRole
    assert not policy.allows(RequestAttributes("list", "", "pods", "", None))  # the Role: namespaced only


def test_a_request_without_the_token_is_unauthorized(api: FakeKubeAPI) -> None:
    response = httpx.get(f"{api.url}/api/v1/namespaces/{NS}/pods", timeout=5)
    assert response.status_code == 401 and response.json()["reason"] == "Unauthorized"
    wrong = httpx.get(f"{api.url}/api/v1/namespaces/{NS}/pods", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    assert api.audit.count(allowed=False) == 2


# -- chaostoolkit-kubernetes ---------------------------------------------------------------------------


def test_chaosk8s_terminate_pods_deletes_one_pod_through_the_kubeconfig(
    api: FakeKubeAPI, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, global_client_config: None
) -> None:
    from chaosk8s.pod.actions import terminate_pods

    # chaosk8s checks $KUBECONFIG but the client reads the path it had at import: both must point here
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setenv("KUBERNETES_CONTEXT", CONTEXT)
    before = {p["metadata"]["name"] for p in api.store.list(PODS)[0]}
    api.audit.clear()
    deleted = terminate_pods(label_selector="app=api", ns=NS, qty=1, secrets=None)
    assert len(deleted) == 1 and deleted[0] in before
    assert deleted[0] not in {p["metadata"]["name"] for p in api.store.list(PODS)[0]}
    assert (api.audit.count(verb="list", resource="pods"), api.audit.count(verb="delete", resource="pods")) == (1, 1)


# -- the pieces -------------------------------------------------------------------------------------------


def test_set_based_label_selectors_match_as_kubernetes_does() -> None:
    selector = LabelSelector.parse("app in (api, web),env notin (dev),canary,!legacy,tier!=db,zone==a")
    assert selector.matches({"app": "web", "canary": "", "tier": "front", "zone": "a"})
    assert selector.matches({"app": "api", "canary": "1", "zone": "a"})  # notin and != hold without the key
    assert not selector.matches({"app": "api", "canary": "1", "zone": "a", "legacy": "y"})
    assert not selector.matches({"app": "api", "canary": "1", "zone": "a", "env": "dev"})
    assert not LabelSelector.from_dict(None).matches({})
    assert LabelSelector.from_dict({"matchExpressions": [{"key": "app", "operator": "Exists"}]}).matches({"app": "x"})


def test_a_strategic_merge_patch_merges_containers_by_name_and_a_json_patch_applies_in_order() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
                                   {"name": "b", "image": "b:1"}]}}  # fmt: skip
    merged = apply_patch(pod, {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}, STRATEGIC_MERGE_PATCH)
    assert merged["spec"]["containers"] == [pod["spec"]["containers"][0], {"name": "b", "image": "b:2"}]
    ops = [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "a:2"},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "test", "path": "/spec/containers/0/name", "value": "a"},
    ]
    assert apply_patch(pod, ops, JSON_PATCH)["spec"]["containers"] == [{**pod["spec"]["containers"][0], "image": "a:2"}]
    assert pod["spec"]["containers"][1]["image"] == "b:1"  # the original is untouched
