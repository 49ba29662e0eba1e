"""Drills through the Kubernetes driver on the sandbox served as a Kubernetes API (``--env sandbox-k8s``).

The driver and chaosk8s talk to a Kubernetes API over HTTP through a kubeconfig, under the drill
runner's own RBAC from the rendered manifests, and every pod there is a real sandbox replica:
deleting a pod kills that process. Ground truth is the sandbox's own processes, read past the
API. The manifests decide the outcome: the staging overlay's four replicas keep serving through
pod kills (PASS); the same drill with one replica and no PDB has an outage per kill (FAIL).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from drillbit.core.results import MEASUREMENTS, RUN, Measurements, Outcome, RunInfo, read_model
from drillbit.manifests import render
from drillbit.plan import DrillPlan, load_plan
from drillbit.runner import DrillResult, RunOptions, run_drill
from drillbit.targets.kubernetes import KubernetesTarget
from drillbit.targets.sandbox.driver import SandboxSpec, SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox
from drillbit.testing.sandbox_k8s.bridge import AUDIT
from drillbit.testing.sandbox_k8s.kind import SandboxK8sKind, bridge_running

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = "sandbox-k8s"


def _plan(name: str) -> DrillPlan:
    plan = load_plan(ROOT / "experiments" / f"{name}.yaml")
    return dataclasses.replace(plan, settings=plan.settings.model_copy(update={"baseline_s": 3.0, "cooldown_s": 3.0}))


def _drill(state_dir: Path, out: Path, **options: Any) -> DrillResult:
    result = run_drill(_plan("k8s-pod-kill"), RunOptions(env=ENV, state_dir=state_dir, out=out, tty=False, say=print,
                                                         **options))  # fmt: skip
    verdicts = [v.model_dump(mode="json") for v in result.verdicts.verdicts] if result.verdicts else None
    for v in verdicts or []:
        print(f"  {v['verdict']:12} {v['sla']:20} {v['measured']} ({v['op']} {v['target']}): {v['reason']}")
    print(f"exit {result.exit_code}")
    return result


def _verdict(result: DrillResult, sla: str) -> Any:
    assert result.verdicts is not None
    return next(v for v in result.verdicts.verdicts if v.sla == sla)


@pytest.fixture
def k8s(sandbox_env: Sandbox) -> Iterator[KubernetesTarget]:
    """The session's sandbox served as a Kubernetes API; down stops the API and leaves the sandbox."""
    kind, spec, state = SandboxK8sKind(), SandboxSpec(), sandbox_env.layout.state_dir
    target = kind.up(ENV, spec, state, print)
    try:
        yield target
    finally:
        kind.down(ENV, spec, state, print)
        assert bridge_running(sandbox_env.layout) is None
        assert Sandbox.attach(state).state.id == sandbox_env.state.id  # the shared sandbox is left running


def test_the_sandbox_served_as_a_kubernetes_api_shows_its_real_replicas_as_pods(
    k8s: KubernetesTarget, sandbox_env: Sandbox
) -> None:
    pods = {name for zone in k8s.replicas().values() for name in zone["ready_ids"]}
    pids = {pid for r in sandbox_env.regions for pid in sandbox_env.supervisor.pids(f"api-{r}")}
    assert {int(name.rsplit("-", 1)[1]) for name in pods} == pids
    assert {z: c["ready"] for z, c in k8s.replicas().items()} == \
        {r: c["ready"] for r, c in sandbox_env.replicas().items()}  # fmt: skip
    assert k8s.whole() and k8s.settled() and k8s.primary_region() == sandbox_env.primary()
    # a server-side dry run of every kind of change a drill makes: allowed by the Role, nothing done
    rows = k8s.dry_run()
    assert rows and all(r["ok"] for r in rows), rows
    assert {pid for r in sandbox_env.regions for pid in sandbox_env.supervisor.pids(f"api-{r}")} == pids


def test_k8s_pod_kill_through_the_kubernetes_driver_passes_with_real_recovery_figures(
    k8s: KubernetesTarget, sandbox_env: Sandbox, tmp_path: Path
) -> None:
    """Deleting pods through the API kills those very processes; the supervisor's replacements come
    back as new pods; RTO and replica restore are measured and PASS on the staging manifests."""
    audit = sandbox_env.layout.root / "k8s" / AUDIT
    before = len(audit.read_text().splitlines())
    result = _drill(sandbox_env.layout.state_dir, tmp_path)
    calls = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    print(f"Kubernetes API calls during the drill: {len(calls)} ({sum(c['verb'] == 'delete' for c in calls)} deletes)")
    assert calls and not [c for c in calls if not c["allowed"]]  # the drill runner's Role sufficed
    assert sum(c["verb"] == "delete" and c["resource"] == "pods" for c in calls) == 3
    m = read_model(result.run_dir / MEASUREMENTS, Measurements)
    assert [f.landed for f in m.faults] == [True, True], m.faults
    killed = [name for f in m.faults for name in f.detail["killed"]]
    assert len(killed) == 3  # one pod, then 50 % of four
    assert not any(psutil.pid_exists(int(name.rsplit("-", 1)[1])) for name in killed)  # those processes died
    assert m.rto is not None and m.rto.recovered and m.rto.rto_s is not None
    assert m.replicas is not None and m.replicas.restored_s is not None and m.replicas.restored_s < 30
    assert result.exit_code == 0 and result.verdicts is not None and result.verdicts.outcome is Outcome.PASS
    info = read_model(result.run_dir / RUN, RunInfo)
    assert info.target["kind"] == "kubernetes" and info.target["fingerprint"]["context"] == ENV
    # the manifests the API serves are the drill's record: hashed, checked, and in the report
    staged = render(ROOT / "infra" / "k8s" / "overlays" / "staging")
    assert info.manifests_check is not None and info.manifests_check.rendered_sha256 == staged.rendered_sha256
    assert staged.rendered_sha256 in (result.run_dir / "report.html").read_text()
    assert SandboxTarget(sandbox_env).whole()


def _one_replica_project(tmp_path: Path) -> Path:
    """A topology whose manifests are the staging overlay with one API replica, no HPA and no PDB."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    staging = os.path.relpath(ROOT / "infra" / "k8s" / "overlays" / "staging", overlay)
    deletions = [("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget")]
    patches = "".join(
        f"  - patch: |-\n      $patch: delete\n      apiVersion: {v}\n      kind: {k}\n"
        f"      metadata: {{name: trading-api, namespace: trading-staging}}\n"
        for v, k in deletions
    )
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{staging}]\nreplicas:\n  - {{name: trading-api, count: 1}}\npatches:\n{patches}")  # fmt: skip
    topology = tmp_path / "topology.yaml"
    shipped = (ROOT / "infra" / "sandbox" / "topology.yaml").read_text()
    topology.write_text(shipped.replace("manifests: ../k8s/overlays/staging", f"manifests: {overlay}"))
    return topology


def test_the_same_drill_with_a_one_replica_manifest_fails(tmp_path: Path) -> None:
    """One replica, no PDB: each pod kill takes the whole service away until the replacement is
    ready: requests fail (no_outage) or, held in the listening socket's backlog, wait for it
    (no_stall), and the drill FAILs where the lenient SLAs (RTO < 15 min) alone would pass."""
    state = tmp_path / ".drill"
    result = _drill(state, tmp_path / "runs", topology=_one_replica_project(tmp_path))  # brings it up and down
    m = read_model(result.run_dir / MEASUREMENTS, Measurements)
    assert m.faults and m.faults[0].landed, m.faults
    failed = {v.sla for v in result.verdicts.verdicts if v.verdict is Outcome.FAIL} if result.verdicts else set()
    assert failed & {"no_outage", "no_stall"}, result.verdicts
    assert result.exit_code == 1 and result.verdicts is not None and result.verdicts.outcome is Outcome.FAIL
    assert not (state / "sandbox" / "state.json").exists()  # the drill took down what it brought up
