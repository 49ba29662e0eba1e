"""The drill runner's RBAC, as the staging overlay renders it, is sufficient and minimal.

Sufficient: the fake Kubernetes API enforces exactly the Roles bound to the drill-runner
ServiceAccount of the overlay's namespace, and every cluster operation of the six k8s experiments
(their drillbit.faults actions as the KubernetesTarget methods they call, chaosk8s's deployment
probe, what the runner does around every drill, the watch-based samplers) runs with no request
refused. Minimal: take any one (apiGroup, resource, verb) away and an operation that used it is
refused (403 in the audit log).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaosk8s.deployment.probes import deployment_available_and_healthy
from kubernetes import config as kube_config
from kubernetes import watch
from kubernetes.client import AppsV1Api, AutoscalingV2Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from drillbit.core.errors import EnvironmentFailure
from drillbit.manifests.render import render
from drillbit.targets.kubernetes import KubernetesTarget
from drillbit.testing.kubeapi import AuditRecord, FakeKubeAPI, Policy
from drillbit.testing.kubeapi.rbac import PolicyRule
from tests.unit.test_kubernetes_target import NS, fake_cluster, kube_target

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "infra" / "k8s" / "overlays" / "staging"
RUNNER = "drill-runner"
Grant = tuple[str, str, str]  # (apiGroup, resource, verb), as a Role's rule grants it
#: granted, and no operation of a drill needs it; kept only while another test reads it under the Role
NOT_YET_REMOVED: dict[Grant, str] = {}


@functools.cache
def rendered() -> tuple[dict[str, Any], ...]:
    return tuple(o for o in render(STAGING, origins=False).objects if isinstance(o, dict))


def runner_roles(objects: tuple[dict[str, Any], ...], namespace: str) -> list[dict[str, Any]]:
    """The Roles and ClusterRoles bound to the ServiceAccount drill-runner of ``namespace``."""
    refs: set[tuple[str, str]] = set()
    for obj in objects:
        if obj.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == RUNNER and s.get("namespace") == namespace
               for s in obj.get("subjects") or []):  # fmt: skip
            refs.add((obj["roleRef"]["kind"], obj["roleRef"]["name"]))
    return [o for o in objects if (o.get("kind"), o["metadata"]["name"]) in refs]


@functools.cache
def runner_policy() -> Policy:
    return Policy.from_documents(runner_roles(rendered(), NS))


def granted(policy: Policy) -> list[Grant]:
    return sorted({(g, r, v) for rule in policy.rules for g in rule.api_groups for r in rule.resources
                   for v in rule.verbs})  # fmt: skip


def without(policy: Policy, grant: Grant) -> Policy:
    """``policy`` less one (apiGroup, resource, verb): every rule split into one rule per grant."""
    return Policy(tuple(
        PolicyRule(frozenset({g}), frozenset({r}), frozenset({v}), rule.resource_names, rule.namespace,
                   rule.cluster_wide)
        for rule in policy.rules for g in rule.api_groups for r in rule.resources for v in rule.verbs
        if (g, r, v) != grant
    ))  # fmt: skip


# -- the operations of the k8s experiments -----------------------------------------------------------


@dataclass(frozen=True)
class Drilled:
    """A fake cluster with blue-green, an HPA and a Patroni pair, and the target a drill resolves for it."""

    api: FakeKubeAPI
    tmp: Path

    @functools.cached_property
    def target(self) -> KubernetesTarget:
        return kube_target(self.api, self.tmp)


def _list_and_watch(list_fn: Callable[..., Any], *args: str, **kwargs: str) -> None:
    version = list_fn(*args, **kwargs).metadata.resource_version
    for _ in watch.Watch().stream(list_fn, *args, **kwargs, resource_version=version, timeout_seconds=1):
        continue


def _samplers(d: Drilled) -> None:
    """What the watch-based samplers do (drillbit.targets.kubewatch, in progress): list, then watch, the
    nodes (zones), the API Deployment, its pods, the HPAs and the core Events of the namespace."""
    with kube_config.new_client_from_config(config_file=d.target.spec.kubeconfig, context="staging") as client:
        core, apps, autoscaling = CoreV1Api(client), AppsV1Api(client), AutoscalingV2Api(client)
        with ThreadPoolExecutor(5) as pool:
            watches = [pool.submit(_list_and_watch, core.list_node),
                       pool.submit(_list_and_watch, apps.list_namespaced_deployment, NS,
                                   field_selector="metadata.name=trading-api"),
                       pool.submit(_list_and_watch, core.list_namespaced_pod, NS,
                                   label_selector="app.kubernetes.io/name=trading-api"),
                       pool.submit(_list_and_watch, autoscaling.list_namespaced_horizontal_pod_autoscaler, NS),
                       pool.submit(_list_and_watch, core.list_namespaced_event, NS)]  # fmt: skip
            for w in watches:
                w.result()


def _chaosk8s_probe(d: Drilled) -> None:
    with d.target.activity_scope():
        assert deployment_available_and_healthy("trading-api", ns=NS) is True


def _lose_zone_a(d: Drilled) -> object:
    return d.target.lose_region("zone-a")


def _switch(d: Drilled) -> object:
    return d.target.switch_traffic()


def _crash_leftovers(d: Drilled) -> None:
    """What a drill that died mid-fault leaves: a zone cordoned and the Service switched."""
    _lose_zone_a(d)
    _switch(d)


@dataclass(frozen=True)
class Operation:
    run: Callable[[Drilled], object]
    setup: Callable[[Drilled], object] | None = None  # under the full Role, before the audit starts


OPERATIONS: dict[str, Operation] = {
    "kill_replicas": Operation(lambda d: d.target.kill_replicas(count=1)),
    "lose_region": Operation(_lose_zone_a),
    "restore_region": Operation(lambda d: d.target.restore_region("zone-a"), setup=_lose_zone_a),
    "roll_out": Operation(lambda d: d.target.roll_out("3")),  # the rolling update and its rollback alike
    "fail_over_database": Operation(lambda d: d.target.fail_over_database()),
    "switch_traffic": Operation(_switch),
    "switch_traffic_back": Operation(lambda d: d.target.switch_traffic_back(), setup=_switch),
    "deployment_available_and_healthy": Operation(_chaosk8s_probe),
    # what the runner does around every drill: at rest before the baseline, run.json, the replica
    # sampler, heal afterwards (here a later process healing a crashed drill's faults)
    "settled": Operation(lambda d: d.target.settled()),
    "whole": Operation(lambda d: d.target.whole()),
    "fingerprint": Operation(lambda d: d.target.fingerprint()),
    "replicas": Operation(lambda d: d.target.replicas()),
    "primary_region": Operation(lambda d: d.target.primary_region()),
    "heal_after_a_crash": Operation(lambda d: kube_target(d.api, d.tmp).heal(), setup=_crash_leftovers),
    "samplers": Operation(_samplers),
}
#: every activity of the k8s experiments -> the operations it performs on the cluster
ACTIVITIES: dict[str, list[str]] = {
    "drillbit.faults.kill_replicas": ["kill_replicas"],
    "drillbit.faults.lose_region": ["lose_region"],
    "drillbit.faults.restore_region": ["restore_region"],
    "drillbit.faults.roll_out": ["roll_out"],
    "drillbit.faults.fail_over_database": ["fail_over_database"],
    "drillbit.faults.switch_traffic": ["switch_traffic"],
    "drillbit.faults.switch_traffic_back": ["switch_traffic_back"],
    "drillbit.faults.service_ready": [],  # these three only send HTTP to the service's own URL
    "drillbit.faults.await_service": [],
    "drillbit.faults.spike_load": [],
    "chaosk8s.deployment.probes.deployment_available_and_healthy": ["deployment_available_and_healthy"],
}
EVERY_DRILL = ["settled", "whole", "fingerprint", "replicas", "primary_region", "heal_after_a_crash", "samplers"]


def run_operation(name: str, policy: Policy, tmp: Path) -> list[AuditRecord]:
    """The audit of operation ``name`` on a fresh cluster under ``policy`` (its setup under the full Role)."""
    op = OPERATIONS[name]
    with fake_cluster(runner_policy(), blue_green=True, hpa_min=4) as api:
        drilled = Drilled(api, tmp)
        if op.setup is not None:
            op.setup(drilled)
        api.policy = policy
        api.audit.clear()
        with contextlib.suppress(EnvironmentFailure, ApiException):  # refused: the audit says by what
            op.run(drilled)
        return api.audit.records


@dataclass(frozen=True)
class Usage:
    calls: int
    refused: int
    grants: frozenset[Grant]


@pytest.fixture(scope="module")
def usage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Usage]:
    """Every operation run once under the rendered Role: its calls, refusals and the grants it used."""
    out = {}
    for name in OPERATIONS:
        audit = [r for r in run_operation(name, runner_policy(), tmp_path_factory.mktemp(name)) if r.verb]
        out[name] = Usage(len(audit), sum(not r.allowed for r in audit),
                          frozenset((r.api_group, r.resource, r.verb) for r in audit if r.allowed))  # fmt: skip
    return out


# -- the tests ----------------------------------------------------------------------------------------


def test_the_overlay_binds_the_runners_role_and_cluster_role_to_its_service_account_in_its_namespace() -> None:
    bound = {(o["kind"], o["metadata"]["name"]) for o in runner_roles(rendered(), NS)}
    assert bound == {("Role", "drill-runner"), ("ClusterRole", "drill-runner-nodes")}
    role = next(o for o in rendered() if o["kind"] == "Role" and o["metadata"]["name"] == RUNNER)
    assert role["metadata"]["namespace"] == NS


def test_the_runners_roles_grant_no_wildcard_and_no_named_subset() -> None:
    rules = runner_policy().rules
    assert rules and not any("*" in r.api_groups | r.resources | r.verbs for r in rules)
    assert not any(r.resource_names for r in rules)  # each grant is all-or-nothing: removing it is the test


def test_every_activity_of_the_six_k8s_experiments_has_its_cluster_operations_here() -> None:
    files = sorted((ROOT / "experiments").glob("k8s-*.yaml"))
    assert len(files) == 6, files
    for path in files:
        exp = yaml.safe_load(path.read_text())
        activities = [*exp["steady-state-hypothesis"]["probes"], *exp["method"], *exp.get("rollbacks", [])]
        for a in activities:
            provider = a["provider"]
            assert f"{provider['module']}.{provider['func']}" in ACTIVITIES, (path.name, a["name"])


def test_every_operation_of_the_k8s_experiments_runs_under_the_rendered_role_with_no_request_refused(
    usage: dict[str, Usage],
) -> None:
    covered = {op for ops in ACTIVITIES.values() for op in ops} | set(EVERY_DRILL)
    assert covered == set(OPERATIONS)
    print("\nAPI calls per operation (audit log, rendered staging Role):")
    for name, u in usage.items():
        print(f"  {name:34} {u.calls:3d} calls, {u.refused} refused: {sorted(f'{v} {r}' for _, r, v in u.grants)}")
    assert {name: u.refused for name, u in usage.items() if u.refused} == {}
    assert all(u.calls > 0 for u in usage.values())


def _grant_param(grant: Grant) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=NOT_YET_REMOVED[grant])] if grant in NOT_YET_REMOVED else []
    return pytest.param(grant, id="/".join((grant[0] or "core", *grant[1:])), marks=marks)


def _grant_params() -> list[Any]:
    return [_grant_param(g) for g in granted(runner_policy())]


@pytest.mark.parametrize("grant", _grant_params())
def test_without_any_one_grant_an_operation_of_the_k8s_experiments_is_refused(
    grant: Grant, usage: dict[str, Usage], tmp_path: Path
) -> None:
    users = [name for name, u in usage.items() if grant in u.grants]
    assert users, f"no operation of the k8s experiments uses {grant}: not minimal, remove it from the Role"
    cheapest = min(users, key=lambda name: usage[name].calls)
    audit = run_operation(cheapest, without(runner_policy(), grant), tmp_path)
    refused = {(r.api_group, r.resource, r.verb) for r in audit if not r.allowed and r.code == 403}
    assert grant in refused, (cheapest, refused)
