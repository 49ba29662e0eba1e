"""The data drills' sandbox: one of their own, with the inter-region links (network faults), the
backups (point-in-time restore) and monitoring (the replication-lag alert, its threshold scaled to
tests/e2e/data/lagrule.py) enabled, shared by this package's modules and stopped after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drillbit.targets.sandbox import sandbox
from drillbit.targets.sandbox.sandbox import Sandbox
from tests.e2e.data.lagrule import scaled_rules

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="package")
def data_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The shipped topology with links: {enabled: true} and backups: {enabled: true}, with monitoring.
    (Its Patroni TTL, 20 s, is already Patroni's minimum: the partition drills cannot be shortened there.)"""
    src = ROOT / "infra" / "sandbox" / "topology.yaml"
    data = yaml.safe_load(src.read_text())
    data["links"] = {"enabled": True}
    data["backups"] = {"enabled": True}
    data["manifests"] = str((src.parent / data["manifests"]).resolve())  # relative to the original
    tmp = tmp_path_factory.mktemp("data-sandbox")
    rules = scaled_rules(src.parent / data["monitoring"]["rules"], tmp / "rules")  # tests/e2e/data/lagrule.py
    data["monitoring"] = {**data["monitoring"], "rules": str(rules),
                          "alertmanager": str((src.parent / data["monitoring"]["alertmanager"]).resolve())}
    topo = tmp / "topology.yaml"
    topo.write_text(yaml.safe_dump(data))
    state = tmp / ".drill"
    box = sandbox.up(topology_file=topo, state_dir=state, report=print, monitoring=True)  # the lag alert
    try:
        yield box
    finally:
        sandbox.down(state, report=print)
