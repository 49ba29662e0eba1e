"""Fuzz every loader drillbit reads input with: random YAML structures, valid documents with one
value swapped for a random one, and raw bytes. Each input is either accepted or refused as a user
error (exit 2) with a message of one line; never any other exception (a traceback, or exit 4).
At least 500 examples per loader, bounded in time (no deadline per example, a timeout per test).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drillbit.core.errors import EXIT_CONFIG, DrillError
from drillbit.load.profiles import load_profile
from drillbit.plan import load_plan
from drillbit.reports.evidence import read_manifest
from drillbit.sla import load_sla_file
from drillbit.suite import load_suite
from drillbit.targets import load_targets
from drillbit.targets.sandbox.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 500
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "..", "../../etc/passwd", "${x}", "one", "-3", "nuke-it", "region-zz", "kill_replicas",
                     "drillbit", "drillbit.faults", "python", "action", "<<", "~", "null", ".nan", "1e309"]),
)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    here = doc
    for step in path[:-1]:
        here = here[step]
    here[path[-1]] = value
    return doc


def _mutated(base: Any) -> st.SearchStrategy[str]:
    paths = _paths(base)
    return st.builds(lambda p, v: yaml.safe_dump(_replace(base, p, v), allow_unicode=True),
                     st.sampled_from(paths), values)  # fmt: skip


def _inputs(base: Any) -> st.SearchStrategy[bytes]:
    """Bytes to write: a valid document with one value swapped, a random structure, or raw bytes."""
    return st.one_of(
        _mutated(base).map(str.encode),
        values.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
        values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
    )


def _outcome(load: Callable[[], Any]) -> int:
    """What drill's main would exit with: 0 accepted, or a DrillError's code; anything else fails the test."""
    try:
        load()
    except DrillError as err:
        assert "\n" not in str(err), f"more than one line: {err}"
        return err.exit_code
    return 0


def _check(load: Callable[[], Any]) -> None:
    assert _outcome(load) in (0, EXIT_CONFIG)


def _base(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs(_base(ROOT / "experiments" / "region-loss.yaml")))
def test_experiments(scratch: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path = scratch / "region-loss.yaml"
    path.write_bytes(data)
    _check(lambda: load_plan(path))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs(_base(ROOT / "experiments" / "slas.yaml")))
def test_sla_files(scratch: Path, data: bytes) -> None:
    path = scratch / "slas.yaml"
    path.write_bytes(data)
    _check(lambda: load_sla_file(path))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs(_base(ROOT / "loadtests" / "profiles" / "step.yaml")))
def test_profiles(scratch: Path, data: bytes) -> None:
    path = scratch / "profile.yaml"
    path.write_bytes(data)
    _check(lambda: load_profile(path))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs({"targets": {"staging": {"kind": "kubernetes", "context": "c", "namespace": "n"},
                                 "local": {"kind": "sandbox", "state_dir": ".drill"}}}))  # fmt: skip
def test_drill_yaml(scratch: Path, data: bytes) -> None:
    path = scratch / "drill.yaml"
    path.write_bytes(data)
    _check(lambda: load_targets(path))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs(_base(ROOT / "infra" / "sandbox" / "topology.yaml")))
def test_topologies(scratch: Path, data: bytes) -> None:
    path = scratch / "topology.yaml"
    path.write_bytes(data)
    _check(lambda: load_topology(path))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_inputs({"suites": {"all": {"description": "d", "experiments": ["pod-kill.yaml"]}}}))
def test_suites(scratch: Path, data: bytes) -> None:
    path = scratch / "suites.yaml"
    path.write_bytes(data)
    (scratch / "pod-kill.yaml").touch()
    _check(lambda: load_suite("all", path))


MANIFEST_BASE = {"schema": "drillbit.manifest/1", "run_id": "r", "started_at": 1.0, "sealed_at": 2.0,
                 "algorithm": "sha256", "files": {"run.json": {"sha256": "ab" * 32, "size": 3}}, "skipped": {},
                 "previous": {"run_id": "p", "dir": "p", "manifest_sha256": "cd" * 32}, "chain_start": False,
                 "signed_by": None}  # fmt: skip


def _json_inputs(base: Any) -> st.SearchStrategy[bytes]:
    mutated = st.builds(lambda p, v: json.dumps(_replace(base, p, v)).encode(), st.sampled_from(_paths(base)), values)
    return st.one_of(mutated, values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200))


@pytest.mark.timeout(600)
@FUZZ
@given(data=_json_inputs(MANIFEST_BASE))
def test_manifests(scratch: Path, data: bytes) -> None:
    run = scratch / "run"
    run.mkdir(exist_ok=True)
    (run / "MANIFEST").write_bytes(data)
    _check(lambda: read_manifest(run))


RUN_FILES = ["run.json", "measurements.json", "verdicts.json", "journal.json", "load.json", "events.jsonl",
             "samples/availability.json"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.unit.rundirs import RunSpec, write_run_dir

    return write_run_dir(tmp_path_factory.mktemp("fuzz-run"), RunSpec(kind="fail"))


@pytest.mark.timeout(600)
@FUZZ
@given(name=st.sampled_from(RUN_FILES), data=st.data())
def test_run_directory_files(run_dir: Path, name: str, data: st.DataObject) -> None:
    """A report reads any run directory: a broken file is a problem in the summary, never an exception."""
    from drillbit.reports.builder import build_summary

    path = run_dir / name
    original = path.read_bytes()
    base = json.loads(original) if name.endswith(".json") else {"t": 1.0, "kind": "phase", "name": "fault"}
    path.write_bytes(data.draw(_json_inputs(base)))
    try:
        summary = _outcome(lambda: build_summary(run_dir))
    finally:
        path.write_bytes(original)
    assert summary == 0
