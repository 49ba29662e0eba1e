"""``drill manifests check``: the shipped overlays are clean; each resilience rule fails on a manifest
broken in its way (exit 1 naming the rule); bad input is exit 2 naming the file; checkov runs
offline and its findings and suppressions are reported."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.cli import main
from drillbit.core.errors import ConfigError
from drillbit.manifests import RULES, check_manifests, render
from drillbit.manifests.check import find_checkov
from drillbit.manifests.rules import run_rules
from drillbit.manifests.sizes import rolling_update, spread
from drillbit.targets.sandbox.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "infra" / "k8s" / "overlays" / "staging"
PROD = ROOT / "infra" / "k8s" / "overlays" / "prod"

Obj = dict[str, Any]


def _good() -> list[Obj]:
    """A Deployment that meets every rule, with its PDB and HPA."""
    labels = {"app": "api"}
    container = {
        "name": "api", "image": "registry.example/api:1.2.3", "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 2, "failureThreshold": 2},
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "t"},
        "spec": {
            "replicas": 3, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 30, "containers": [container],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                               "whenUnsatisfiable": "DoNotSchedule",
                                               "labelSelector": {"matchLabels": labels}}]}},
        },
    }  # fmt: skip
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api", "namespace": "t"},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}  # fmt: skip
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "api", "namespace": "t"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                    "minReplicas": 3, "maxReplicas": 6,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 70}}}]}}  # fmt: skip
    return [deployment, pdb, hpa]


def _pod(objs: list[Obj]) -> Obj:
    return objs[0]["spec"]["template"]["spec"]


def _min_replicas(objs: list[Obj], n: int) -> None:
    objs[0]["spec"]["replicas"] = n
    objs[2]["spec"]["minReplicas"] = n


def _pdb_min_available(objs: list[Obj], value: int) -> None:
    objs[1]["spec"] = {"minAvailable": value, "selector": objs[1]["spec"]["selector"]}


BREAKAGES: dict[str, Callable[[list[Obj]], None]] = {
    "DRILL-K8S-001": lambda o: _min_replicas(o, 1),
    "DRILL-K8S-002": lambda o: o.pop(1),
    "DRILL-K8S-003": lambda o: _pod(o)["containers"][0].pop("readinessProbe"),
    "DRILL-K8S-004": lambda o: _pod(o).pop("topologySpreadConstraints"),
    "DRILL-K8S-005": lambda o: _pdb_min_available(o, 3),
    "DRILL-K8S-006": lambda o: o[0]["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=2),
    "DRILL-K8S-007": lambda o: _pod(o)["containers"][0]["resources"].pop("limits"),
    "DRILL-K8S-008": lambda o: _pod(o)["containers"][0].update(image="registry.example/api:latest"),
    "DRILL-K8S-009": lambda o: _pod(o).update(terminationGracePeriodSeconds=4),
}


# breaking these also breaks the PDB rule, truly: one replica leaves a PDB of maxUnavailable 1
# permitting every pod to go; a minAvailable equal to the HPA's minimum permits no disruption
ALSO_BROKEN = {"DRILL-K8S-001": ("DRILL-K8S-002",), "DRILL-K8S-005": ("DRILL-K8S-002",)}


def _write(objs: list[Obj], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
    return path


def test_every_rule_has_a_breaking_example() -> None:
    assert sorted(BREAKAGES) == sorted(r.id for r in RULES)


def test_a_workload_that_meets_every_rule_has_no_finding() -> None:
    assert run_rules(_good(), lambda _: "x.yaml") == []


@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_a_manifest_broken_in_a_rules_way_exits_1_naming_the_rule(
    rule: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objs = copy.deepcopy(_good())
    BREAKAGES[rule](objs)
    path = _write(objs, tmp_path / "broken.yaml")
    code = main(["manifests", "check", str(path), "--no-checkov", "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"ERROR   {rule} Deployment/api ({path})" in err, err
    report = json.loads((tmp_path / "out" / "manifests-check.json").read_text())
    errors = {f["rule"] for f in report["findings"] if f["severity"] == "error"}
    assert errors == {rule, *ALSO_BROKEN.get(rule, ())}


def test_an_exemption_with_a_reason_is_info_and_without_one_stays_an_error(tmp_path: Path) -> None:
    objs = _good()
    BREAKAGES["DRILL-K8S-008"](objs)
    objs[0]["metadata"]["annotations"] = {"drillbit.dev/exempt": "DRILL-K8S-008: a scratch build, never deployed"}
    (finding,) = run_rules(objs, lambda _: "x.yaml")
    assert finding.severity == "info" and "a scratch build, never deployed" in finding.message
    objs[0]["metadata"]["annotations"] = {"drillbit.dev/exempt": "DRILL-K8S-008"}
    (finding,) = run_rules(objs, lambda _: "x.yaml")
    assert finding.severity == "error" and "without a reason" in finding.message


def test_a_pdb_that_permits_every_pod_to_go_is_a_finding() -> None:
    objs = _good()
    objs[1]["spec"]["maxUnavailable"] = 3
    assert [f.rule for f in run_rules(objs, lambda _: "x.yaml")] == ["DRILL-K8S-002"]


@pytest.mark.parametrize("overlay", [STAGING, PROD])
def test_the_shipped_overlays_pass_the_schemas_and_every_rule(overlay: Path) -> None:
    result = check_manifests(overlay, checkov=False)
    assert result.rendered.kustomize and len(result.rendered.objects) >= 25
    assert [f for f in result.findings if f.severity != "info"] == []
    assert result.exit_code == 0


def test_the_rendering_records_every_source_file_and_the_output_hash() -> None:
    r = render(STAGING)
    paths = {Path(s.path).resolve() for s in r.sources}
    assert STAGING / "kustomization.yaml" in paths and ROOT / "infra/k8s/base/kustomization.yaml" in paths
    assert ROOT / "infra/k8s/base/api.yaml" in paths
    deployment = next(o for o in r.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "trading-api")
    assert Path(r.origin(deployment)).resolve() == ROOT / "infra/k8s/base/api.yaml"
    assert deployment["spec"]["replicas"] == 4 and deployment["metadata"]["namespace"] == "trading-staging"
    assert render(STAGING).rendered_sha256 == r.rendered_sha256 != render(PROD).rendered_sha256


def test_a_field_kubernetes_does_not_know_fails_the_schema_check(tmp_path: Path) -> None:
    objs = _good()
    objs[0]["spec"]["replicaz"] = 3
    result = check_manifests(_write(objs, tmp_path / "typo.yaml"), checkov=False)
    (finding,) = [f for f in result.findings if f.severity == "error"]
    assert finding.rule == "K8S-SCHEMA" and "replicaz" in finding.message and result.exit_code == 1


def test_unparseable_yaml_is_exit_2_naming_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Deployment\nmetadata:\n  name: [unclosed\n")
    assert main(["manifests", "check", str(path), "--no-checkov", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"drill: error: {path} line ") and "not valid YAML" in err and "\n" not in err


def test_a_kustomization_that_does_not_render_is_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    assert main(["manifests", "check", str(tmp_path), "--no-checkov", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "kustomize cannot render it" in err and "missing.yaml" in err and "\n" not in err


def test_an_unknown_fail_on_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifests", "check", str(STAGING), "--fail-on", "sometimes", "--no-checkov"]) == 2
    assert "--fail-on" in capsys.readouterr().err


def test_fail_on_warning_counts_an_unvalidated_custom_resource(tmp_path: Path) -> None:
    crd = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "db"}, "spec": {}}
    path = _write([*_good(), crd], tmp_path / "crd.yaml")
    assert check_manifests(path, checkov=False).exit_code == 0
    result = check_manifests(path, checkov=False, fail_on="warning")
    assert result.exit_code == 1 and [f.rule for f in result.findings] == ["K8S-SCHEMA"]


@pytest.fixture(scope="module")
def checkov() -> str:
    program = find_checkov(ROOT)
    assert program is not None, "checkov is not installed: `make test` installs it into .tools/checkov"
    return program


def test_checkov_runs_offline_on_the_staging_overlay_and_reports_each_suppression_with_its_reason(
    checkov: str,
) -> None:
    result = check_manifests(STAGING)
    assert result.checkov and result.passed_checks["checkov"] > 100
    suppressed = [f for f in result.findings if f.source == "checkov"]
    assert suppressed and all(f.severity == "info" and f.message.startswith("suppressed (") for f in suppressed)
    assert result.exit_code == 0


def test_a_privileged_container_is_a_checkov_error(checkov: str, tmp_path: Path) -> None:
    objs = _good()
    _pod(objs)["containers"][0]["securityContext"] = {"privileged": True}
    result = check_manifests(_write(objs, tmp_path / "privileged.yaml"))
    errors = {f.rule for f in result.findings if f.severity == "error" and f.source == "checkov"}
    assert "CKV_K8S_16" in errors and result.exit_code == 1


# -- the sandbox takes the API's sizes from the manifests its topology names -------------------------


def _project_copy(tmp_path: Path, topology_extra: str = "") -> tuple[Path, Path]:
    """infra/k8s and the shipped topology copied under tmp_path: (topology file, staging overlay)."""
    shutil.copytree(ROOT / "infra" / "k8s", tmp_path / "infra" / "k8s")
    (tmp_path / "infra" / "sandbox").mkdir(parents=True)
    topo = tmp_path / "infra" / "sandbox" / "topology.yaml"
    topo.write_text((ROOT / "infra" / "sandbox" / "topology.yaml").read_text() + topology_extra)
    return topo, tmp_path / "infra" / "k8s" / "overlays" / "staging"


def _set_sizes(overlay: Path, replicas: int, hpa_min: int, hpa_max: int) -> None:
    k = overlay / "kustomization.yaml"
    text = k.read_text().replace("{name: trading-api, count: 4}", f"{{name: trading-api, count: {replicas}}}")
    text = text.replace("path: /spec/minReplicas, value: 4}", f"path: /spec/minReplicas, value: {hpa_min}}}")
    text = text.replace("path: /spec/maxReplicas, value: 8}", f"path: /spec/maxReplicas, value: {hpa_max}}}")
    k.write_text(text)


def test_spread_over_regions_is_a_zone_spread_with_max_skew_1() -> None:
    assert spread(4, 2) == [2, 2] and spread(5, 2) == [3, 2] and spread(7, 3) == [3, 2, 2]


def test_the_shipped_topology_takes_its_api_sizes_from_the_staging_overlay() -> None:
    topo = load_topology(ROOT / "infra" / "sandbox" / "topology.yaml")
    assert [r.api_replicas for r in topo.regions] == [2, 2]
    auto = topo.autoscaling
    assert (auto.enabled, auto.max_replicas, auto.metric, auto.target_rps) == (True, 4, "rps", 35.0)


def test_a_change_to_the_manifests_changes_the_sandbox(tmp_path: Path) -> None:
    topo, overlay = _project_copy(tmp_path)
    _set_sizes(overlay, replicas=5, hpa_min=5, hpa_max=12)
    t = load_topology(topo)
    assert [r.api_replicas for r in t.regions] == [3, 2] and t.autoscaling.max_replicas == 6


def _without_hpa(overlay: Path, replicas: int = 4) -> None:
    """The API's HPA taken out of the base (and the overlay's patches of it), at ``replicas``."""
    base = overlay.parent.parent / "base" / "api.yaml"
    docs = [d for d in yaml.safe_load_all(base.read_text()) if d["kind"] != "HorizontalPodAutoscaler"]
    base.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    k = overlay / "kustomization.yaml"
    text = k.read_text().split("patches:")[0]
    k.write_text(text.replace("{name: trading-api, count: 4}", f"{{name: trading-api, count: {replicas}}}"))


def test_without_an_hpa_the_sandbox_does_not_autoscale(tmp_path: Path) -> None:
    topo, overlay = _project_copy(tmp_path)
    _without_hpa(overlay)
    t = load_topology(topo)
    assert [r.api_replicas for r in t.regions] == [2, 2] and t.autoscaling.enabled is False


def test_sizes_set_in_both_places_are_refused_naming_the_fields(tmp_path: Path) -> None:
    topo, _ = _project_copy(tmp_path)
    topo.write_text(topo.read_text().replace("  - name: region-a\n", "  - name: region-a\n    api_replicas: 3\n"))
    with pytest.raises(ConfigError, match=r"regions\[0\]\.api_replicas: set by the manifests") as err:
        load_topology(topo)
    assert err.value.exit_code == 2 and str(topo) in str(err.value)


def test_fewer_replicas_than_regions_with_an_hpa_is_refused(tmp_path: Path) -> None:
    topo, overlay = _project_copy(tmp_path)
    _set_sizes(overlay, replicas=1, hpa_min=1, hpa_max=2)
    with pytest.raises(ConfigError, match="1 replica\\(s\\) for 2 regions and an HPA: the sandbox autoscales only"):
        load_topology(topo)


def test_one_replica_without_an_hpa_runs_in_one_region_only(tmp_path: Path) -> None:
    """The manifest's single pod is in one zone: the other region keeps its database node and no API."""
    topo, overlay = _project_copy(tmp_path)
    _without_hpa(overlay, replicas=1)
    t = load_topology(topo)
    assert [r.api_replicas for r in t.regions] == [1, 0] and t.autoscaling.enabled is False


def test_a_missing_overlay_is_a_config_error_naming_the_topology(tmp_path: Path) -> None:
    topo, _ = _project_copy(tmp_path)
    topo.write_text(topo.read_text().replace("manifests: ../k8s/overlays/staging", "manifests: ../k8s/nowhere"))
    with pytest.raises(ConfigError, match=r"manifests: \.\./k8s/nowhere: no such file or directory") as err:
        load_topology(topo)
    assert err.value.source == str(topo)


def test_the_rolling_update_budget_follows_kubernetes_rounding_and_defaults() -> None:
    def spec(strategy: dict[str, object]) -> dict[str, object]:
        return {"strategy": strategy}

    assert rolling_update(spec({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}), 4) == (1, 0)
    assert rolling_update(spec({}), 4) == (1, 1)  # 25 % each: surge rounds up, unavailable down
    assert rolling_update(spec({}), 3) == (1, 0)
    assert rolling_update(spec({"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}}), 3) == (2, 1)
    assert rolling_update(spec({"type": "Recreate"}), 4) == (0, 4)


def test_the_shipped_topology_rolls_by_the_manifests_strategy_and_probes_their_readiness_path() -> None:
    topo = load_topology(ROOT / "infra" / "sandbox" / "topology.yaml")
    assert (topo.rollout.max_surge, topo.rollout.max_unavailable) == (1, 0)
    assert topo.api.readiness_path == "/readyz"


def test_a_manifest_that_probes_readiness_on_healthz_makes_the_sandbox_ask_healthz(tmp_path: Path) -> None:
    """A weak readiness probe in the manifests is what the sandbox then calls ready (and drills)."""
    topo, overlay = _project_copy(tmp_path)
    api = overlay.parent.parent / "base" / "api.yaml"
    text = api.read_text()
    api.write_text(text.replace("httpGet: {path: /readyz, port: http}", "httpGet: {path: /healthz, port: http}"))
    assert load_topology(topo).api.readiness_path == "/healthz"


def test_a_rollout_budget_set_in_the_topology_too_is_refused(tmp_path: Path) -> None:
    topo, _ = _project_copy(tmp_path, "rollout:\n  max_surge: 2\n")
    with pytest.raises(ConfigError, match=r"rollout\.max_surge: set by the manifests"):
        load_topology(topo)
