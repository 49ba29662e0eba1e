"""The sandbox topology file: defaults, and every problem reported at once on one line."""

from pathlib import Path

import pytest

from drillbit.core.errors import ConfigError
from drillbit.targets.sandbox.topology import load_topology, parse_topology


def test_default_topology_has_two_regions_with_two_replicas_each() -> None:
    topo = load_topology()
    assert [r.name for r in topo.regions] == ["region-a", "region-b"]
    assert [r.api_replicas for r in topo.regions] == [2, 2]
    assert topo.patroni.ttl == 20 and topo.patroni.loop_wait == 1 and topo.patroni.retry_timeout == 3


def test_every_problem_is_reported_at_once_on_one_line() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_topology({"regions": [{"name": "A"}, {"name": "b", "api_replicas": -1}], "bogus": 1}, "topo.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("topo.yaml: ")
    assert "regions[0].name" in msg
    assert "regions[1].api_replicas" in msg and "(got -1)" in msg
    assert "bogus: unknown field" in msg
    assert exc.value.exit_code == 2


def test_patroni_timing_rule_is_enforced_with_a_fix() -> None:
    data = {"regions": [{"name": "a"}, {"name": "b"}], "patroni": {"ttl": 20, "loop_wait": 5, "retry_timeout": 8}}
    with pytest.raises(ConfigError, match=r"loop_wait \+ 2 \* retry_timeout <= ttl.*raise ttl"):
        parse_topology(data, "t.yaml")


def test_duplicate_region_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="region names must be unique"):
        parse_topology({"regions": [{"name": "a"}, {"name": "a"}]}, "t.yaml")


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("regions:\n  - name: a\n   api_replicas: [\n")
    with pytest.raises(ConfigError) as exc:
        load_topology(bad)
    assert str(bad) in str(exc.value) and "line" in str(exc.value) and "not valid YAML" in str(exc.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_topology(tmp_path / "nope.yaml")


def test_a_region_without_an_api_replica_cannot_be_autoscaled() -> None:
    with pytest.raises(ConfigError, match=r"autoscaling: b run\(s\) no API replica"):
        parse_topology({"regions": [{"name": "a"}, {"name": "b", "api_replicas": 0}]}, "topo.yaml")


def test_a_topology_with_no_api_replica_anywhere_is_refused() -> None:
    with pytest.raises(ConfigError, match="no region runs an API replica"):
        parse_topology({"regions": [{"name": "a", "api_replicas": 0}, {"name": "b", "api_replicas": 0}],
                        "autoscaling": {"enabled": False}}, "topo.yaml")  # fmt: skip
