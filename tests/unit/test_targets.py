"""Target resolution and the allowlist: drillbit only touches a cluster named in its targets file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillbit.core.errors import ConfigError
from drillbit.targets import env_status, env_up, load_targets, registered_kinds, resolve_target
from drillbit.targets.kubernetes import KubernetesTarget

SERVERS = {"staging-eks": "https://127.0.0.2:6443", "prod-eks": "https://127.0.0.3:6443"}
KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "prod-eks",
    "clusters": [{"name": c, "cluster": {"server": s}} for c, s in SERVERS.items()],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in ("staging-eks", "prod-eks")],
}  # fmt: skip


def _files(tmp_path: Path, context: str) -> Path:
    kube = tmp_path / "kubeconfig"
    kube.write_text(yaml.safe_dump(KUBECONFIG))
    config = tmp_path / "drill.yaml"
    target = {"kind": "kubernetes", "context": context, "kubeconfig": str(kube), "namespace": "trading"}
    config.write_text(yaml.safe_dump({"targets": {"staging": target}}))
    return config


def test_an_unknown_target_name_lists_the_known_ones(tmp_path: Path) -> None:
    config = _files(tmp_path, "staging-eks")
    with pytest.raises(ConfigError, match="unknown target 'prod': use one of sandbox, sandbox-k8s, staging"):
        resolve_target("prod", config=config)


def test_a_context_not_in_the_kubeconfig_is_refused(tmp_path: Path) -> None:
    config = _files(tmp_path, "staging-gke")
    with pytest.raises(ConfigError, match="'staging-gke' is not in the kubeconfig"):
        resolve_target("staging", config=config)


def test_the_configured_context_is_used_never_kubectls_current_one(tmp_path: Path) -> None:
    """kubectl points at prod-eks; the target names staging-eks: the driver talks to staging-eks's
    server (it never falls back to prod), and has contacted nothing yet."""
    config = _files(tmp_path, "staging-eks")
    target = resolve_target("staging", config=config)
    assert isinstance(target, KubernetesTarget) and target.api_calls == 0
    assert target._api().configuration.host == SERVERS["staging-eks"]


def test_a_malformed_targets_file_reports_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "drill.yaml"
    config.write_text("targets:\n  a: {kind: mainframe}\n  b: {kind: kubernetes, colour: red}\n")
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    assert "targets.a.kind" in str(err.value) and "targets.b.colour: unknown field" in str(err.value)


FAKE_KIND = '''
from pydantic import BaseModel, ConfigDict


class FakeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: str


class FakeTarget:
    kind = "fake"

    def __init__(self, name, spec):
        self.name, self.spec = name, spec

    def fingerprint(self):
        return {"colour": self.spec.colour}


class FakeKind:
    name = "fake"
    spec_model = FakeSpec

    def check_identity(self, name, spec, source):
        if spec.colour == "prod":
            raise ValueError("refused")

    def attach(self, name, spec, state_dir):
        return FakeTarget(name, spec)

    def is_up(self, name, spec, state_dir):
        return True

    def up(self, name, spec, state_dir, report):
        return FakeTarget(name, spec)

    def down(self, name, spec, state_dir, report):
        pass

    def status(self, name, spec, state_dir):
        return {"up": True, "colour": spec.colour}
'''


@pytest.fixture
def fake_kind_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another package, installed beside drillbit, that registers the kind ``fake`` in the
    ``drillbit.targets`` entry-point group (a real distribution on sys.path, found by importlib.metadata)."""
    site = tmp_path / "site"
    (site / "fakekind-1.0.dist-info").mkdir(parents=True)
    (site / "fakekind-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakekind\nVersion: 1.0\n")
    (site / "fakekind-1.0.dist-info" / "entry_points.txt").write_text("[drillbit.targets]\nfake = fakekind:FakeKind\n")
    (site / "fakekind.py").write_text(FAKE_KIND)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_kind_another_package_registers_is_a_target_kind_without_editing_drillbit(
    tmp_path: Path, fake_kind_package: Path
) -> None:
    config = tmp_path / "drill.yaml"
    config.write_text("targets:\n  lab: {kind: fake, colour: blue}\n")
    assert "fake" in registered_kinds() and "sandbox" in registered_kinds()
    target = resolve_target("lab", config=config)
    assert (target.kind, target.name, target.fingerprint()) == ("fake", "lab", {"colour": "blue"})
    assert env_status("lab", config=config) == {"target": "lab", "kind": "fake", "up": True, "colour": "blue"}


def test_a_registered_kinds_own_fields_are_validated_with_the_rest_of_the_file(
    tmp_path: Path, fake_kind_package: Path
) -> None:
    config = tmp_path / "drill.yaml"
    config.write_text("targets:\n  lab: {kind: fake, color: blue}\n  sb: {kind: sandbox, state_dir: ''}\n")
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    text = str(err.value)
    assert "targets.lab.color: unknown field" in text and "targets.lab.colour: required field is missing" in text
    assert "targets.sb.state_dir" in text and "\n" not in text


def test_an_option_of_another_kind_is_refused_by_env_up(tmp_path: Path, fake_kind_package: Path) -> None:
    config = tmp_path / "drill.yaml"
    config.write_text("targets:\n  lab: {kind: fake, colour: blue}\n")
    with pytest.raises(ConfigError, match="--topology does not apply to a fake target"):
        env_up("lab", config=config, topology="infra/sandbox/topology.yaml")
