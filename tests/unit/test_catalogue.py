"""The experiment catalogue: every entry is a valid Chaos Toolkit experiment citing real requirement ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT.parent / "shared" / "seeds"
CATALOGUE = yaml.safe_load((ROOT / "experiments" / "catalogue.yaml").read_text())["experiments"]


def _requirement_ids() -> set[str]:
    text = (SEEDS / "000_93c94bf87039b472.txt").read_text()
    ids: set[str] = {"E12000"}
    for req, body in re.findall(r"### Requirement (\d+):(.*?)(?=### Requirement|\Z)", text, re.S):
        for k in re.findall(r"^(\d+)\. WHEN", body, re.M):
            ids.add(f"R{req}.{k}")
    return ids


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e["file"] for e in CATALOGUE])
def test_catalogued_experiment_is_valid_and_cites_real_requirements(entry: dict[str, object]) -> None:
    experiment = load_experiment(str(ROOT / "experiments" / str(entry["file"])))
    ensure_experiment_is_valid(experiment)
    cited = {v["id"] for v in entry["verifies"]}  # type: ignore[attr-defined]
    if SEEDS.exists():
        assert cited <= _requirement_ids()
    assert set(experiment.get("tags", [])) >= cited - {"E12000"}


def test_every_experiment_file_is_catalogued() -> None:
    files = {p.name for p in (ROOT / "experiments").glob("*.yaml")} - {"catalogue.yaml", "slas.yaml", "suites.yaml"}
    assert files == {e["file"] for e in CATALOGUE}
