"""The drill project: found by --project, then drill.yaml upward, then drillbit's shipped defaults;
`drill init` writes one that never clobbers a file; the platform's probe definitions come from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drillbit.core.errors import ConfigError
from drillbit.core.project import PROJECT_ENV, current, defaults_root, find_project, init_project
from drillbit.load.profiles import load_profile
from drillbit.probes.definitions import load_probe_definitions
from drillbit.sla import default_sla_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_is_the_project_drillbit_ships_in_an_editable_install() -> None:
    assert defaults_root() == ROOT


def test_the_nearest_drill_yaml_upward_is_the_project(tmp_path: Path) -> None:
    (tmp_path / "drill.yaml").write_text("targets: {}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    project = find_project(start=deep)
    assert project.root == tmp_path.resolve() and not project.shipped


def test_without_a_drill_yaml_upward_the_shipped_project_is_used(tmp_path: Path) -> None:
    project = find_project(start=tmp_path)
    assert project.shipped and project.root == defaults_root()


def test_project_overrides_the_search_and_a_missing_one_is_a_one_line_usage_error(tmp_path: Path) -> None:
    assert find_project(tmp_path, start=ROOT).root == tmp_path.resolve()
    with pytest.raises(ConfigError, match="no such directory"):
        find_project(tmp_path / "nope")


def test_a_file_the_project_lacks_comes_from_the_shipped_defaults_and_its_own_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path))
    assert default_sla_file() == ROOT / "experiments" / "slas.yaml"
    assert load_profile("steady").stages[0].rate == 80
    (tmp_path / "loadtests" / "profiles").mkdir(parents=True)
    (tmp_path / "loadtests" / "profiles" / "steady.yaml").write_text(
        "name: steady\nmodel: open\nstages:\n  - {duration: 5, rate: 7}\n"
    )
    assert load_profile("steady").stages[0].rate == 7
    assert "spike" in current().names("loadtests/profiles", ".yaml")  # the shipped ones are still listed


def test_init_writes_a_project_that_is_found_and_refuses_to_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    written = init_project(dest)
    rel = {str(p.relative_to(dest)) for p in written}
    assert {"drill.yaml", "experiments/pod-kill.yaml", "experiments/slas.yaml", "loadtests/trader.py",
            "loadtests/profiles/steady.yaml", "probes/trading.yaml", "infra/sandbox/topology.yaml"} <= rel
    shipped = (ROOT / "experiments" / "pod-kill.yaml").read_bytes()
    assert (dest / "experiments" / "pod-kill.yaml").read_bytes() == shipped
    assert find_project(start=dest / "experiments").root == dest.resolve()
    (dest / "experiments" / "slas.yaml").write_text("# ours\n")
    with pytest.raises(ConfigError, match="already exist: pass --force"):
        init_project(dest)
    assert (dest / "experiments" / "slas.yaml").read_text() == "# ours\n"
    init_project(dest, force=True)
    assert (dest / "experiments" / "slas.yaml").read_bytes() == (ROOT / "experiments" / "slas.yaml").read_bytes()


def test_drill_init_over_an_existing_project_exits_2_with_one_line(tmp_path: Path) -> None:
    init_project(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "init", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--force" in proc.stderr


def test_the_probe_definitions_come_from_the_project_and_bad_ones_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path))
    assert load_probe_definitions().synthetic_transaction.symbol == "DRILL-AV"  # shipped
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "trading.yaml").write_text("synthetic_transaction: {symbol: lowercase}\n"
                                                      "heartbeat: {table: 'x; DROP TABLE orders'}\n")  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_probe_definitions()
    text = str(err.value)
    assert str(tmp_path / "probes" / "trading.yaml") in text
    assert "synthetic_transaction.symbol" in text and "heartbeat.table" in text
