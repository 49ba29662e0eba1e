"""Target resolution and the allowlist: drillbit only touches a cluster named in its targets file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillbit.errors import ConfigError
from drillbit.targets import load_targets, resolve_target

KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "prod-eks",
    "clusters": [{"name": c, "cluster": {"server": "https://127.0.0.1:6443"}} for c in ("staging-eks", "prod-eks")],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in ("staging-eks", "prod-eks")],
}  # fmt: skip


def _files(tmp_path: Path, context: str) -> Path:
    kube = tmp_path / "kubeconfig"
    kube.write_text(yaml.safe_dump(KUBECONFIG))
    config = tmp_path / "drill.yaml"
    config.write_text(yaml.safe_dump({"targets": {"staging": {"kind": "kubernetes", "context": context,
                                                              "kubeconfig": str(kube)}}}))  # fmt: skip
    return config


def test_an_unknown_target_name_lists_the_known_ones(tmp_path: Path) -> None:
    config = _files(tmp_path, "staging-eks")
    with pytest.raises(ConfigError, match="unknown target 'prod': use one of sandbox, staging"):
        resolve_target("prod", config=config)


def test_a_context_not_in_the_kubeconfig_is_refused(tmp_path: Path) -> None:
    config = _files(tmp_path, "staging-gke")
    with pytest.raises(ConfigError, match="'staging-gke' is not in the kubeconfig"):
        resolve_target("staging", config=config)


def test_the_configured_context_is_used_never_kubectls_current_one(tmp_path: Path) -> None:
    """kubectl points at prod-eks; the target names staging-eks: drillbit gets past the allowlist with
    staging-eks and then says the driver is not in this version (it never falls back to prod)."""
    config = _files(tmp_path, "staging-eks")
    with pytest.raises(ConfigError, match="the kubernetes driver is not available"):
        resolve_target("staging", config=config)


def test_a_malformed_targets_file_reports_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "drill.yaml"
    config.write_text("targets:\n  a: {kind: mainframe}\n  b: {kind: kubernetes, colour: red}\n")
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    assert "targets.a.kind" in str(err.value) and "targets.b.colour: unknown field" in str(err.value)
