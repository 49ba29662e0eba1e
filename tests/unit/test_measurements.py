"""measurements.json's typed sections: files on disk load, a malformed section is named, readers use attributes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from drillbit.analysis import analyze
from drillbit.core.errors import ConfigError
from drillbit.core.results import (
    MEASUREMENTS,
    LatencyStats,
    Measurements,
    RtoMeasurement,
    read_measurements,
    write_model,
)
from drillbit.reports.analysis import fault_spans, phases
from drillbit.reports.rundata import load_run
from drillbit.reports.summary import read_summary, summarize
from drillbit.sla import Sla
from drillbit.verdicts import evaluate
from tests.unit.rundirs import T0, RunSpec, write_run_dir

RTO = Sla(metric="rto_s", op="<", target=900, requirement="R9.4", text="RTO < 15 min")


def _raw(run_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((run_dir / MEASUREMENTS).read_text())
    return doc


def _write(run_dir: Path, doc: dict[str, Any]) -> Path:
    path = run_dir / MEASUREMENTS
    path.write_text(json.dumps(doc))
    return path


def _within(old: Any, new: Any, where: str = "") -> list[str]:
    """Where ``old`` (as on disk) is not found unchanged in ``new`` (as the model writes it back)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [where]
        return [p for k, v in old.items()
                for p in (_within(v, new[k], f"{where}.{k}") if k in new else [f"{where}.{k}"])]  # fmt: skip
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in _within(a, b, f"{where}[{i}]")]
    return [] if old == new else [where]


@pytest.mark.parametrize("kind", ["pass", "fail", "inconclusive", "observe"])
def test_a_measurements_json_already_on_disk_loads_into_the_typed_model(tmp_path: Path, kind: str) -> None:
    m = read_measurements(write_run_dir(tmp_path, RunSpec(kind=kind)) / MEASUREMENTS)
    assert isinstance(m.rto, RtoMeasurement) and m.rto.probes > 0
    assert m.latency is not None and isinstance(m.latency.phases["all"], LatencyStats)
    assert m.replicas is not None and m.replicas.observed_until_s is None  # written before the field existed


def test_every_key_of_a_measurements_json_on_disk_is_written_back_unchanged(tmp_path: Path) -> None:
    """The models keep today's JSON names: nothing renamed, nothing dropped, no value changed."""
    raw = _raw(write_run_dir(tmp_path, RunSpec(kind="fail")))
    again = Measurements.model_validate(raw).model_dump(mode="json", by_alias=True)
    assert _within(raw, again) == []


def test_an_analysis_round_trips_through_measurements_json(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    m = analyze(run_dir, {"rto": RTO})
    assert read_measurements(write_model(run_dir / MEASUREMENTS, m)) == m


def test_a_section_of_the_wrong_type_is_a_one_line_config_error_naming_the_field(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["rto"]["rto_s"] = "fast"
    with pytest.raises(ConfigError) as err:
        read_measurements(_write(run_dir, doc))
    assert "\n" not in str(err.value) and "measurements.json: rto.rto_s: " in str(err.value)


def test_an_unknown_key_in_a_section_is_refused_by_name(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["rpo"]["lost_writes"] = 3
    with pytest.raises(ConfigError, match=r"rpo\.lost_writes: unknown field"):
        read_measurements(_write(run_dir, doc))


def test_a_missing_analyzer_field_is_refused_by_name(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    del doc["latency"]["phases"]["fault"]["p95_ms"]
    with pytest.raises(ConfigError, match=r"latency\.phases\.fault\.p95_ms: required field is missing"):
        read_measurements(_write(run_dir, doc))


def test_load_json_keys_drillbit_does_not_read_are_kept(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["load"]["shape_from_another_tool"] = {"steps": 3}
    m = read_measurements(_write(run_dir, doc))
    assert m.load is not None and m.load.model_dump()["shape_from_another_tool"] == {"steps": 3}


def test_an_older_availability_ratio_reads_as_percent(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["availability"] = {"ratio": 0.95, "probes": 400, "failed": 20, "interval_s": 0.1}
    m = read_measurements(_write(run_dir, doc))
    assert m.availability is not None and m.availability.percent == pytest.approx(95.0)


def test_a_nan_written_as_null_reads_back_as_nan(tmp_path: Path) -> None:
    """A single replica sample has no interval: NaN, which JSON writes as null."""
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["replicas"]["interval_s"] = None
    m = read_measurements(_write(run_dir, doc))
    assert m.replicas is not None and math.isnan(m.replicas.interval_s)


def test_a_verdict_reads_the_rto_from_the_typed_section(tmp_path: Path) -> None:
    m = read_measurements(write_run_dir(tmp_path, RunSpec(kind="pass")) / MEASUREMENTS)
    (verdict,) = evaluate(m, {"rto": RTO}).verdicts
    assert m.rto is not None and verdict.measured == m.rto.rto_s
    assert f"±{m.rto.error_bound_s:.3f} s" in verdict.how


def test_the_report_takes_phases_and_fault_spans_from_measurements_json(tmp_path: Path) -> None:
    """What the analysis stored is what the report draws, not a second reading of the events."""
    run_dir = write_run_dir(tmp_path, RunSpec(kind="pass"))
    doc = _raw(run_dir)
    doc["phases"] = {"only": [T0 + 1, T0 + 2]}
    doc["faults"][0]["reverted_at"] = T0 + 13.5
    _write(run_dir, doc)
    data = load_run(run_dir, hash_files=False)
    assert phases(data) == {"only": (T0 + 1, T0 + 2)}
    assert fault_spans(data) == [(T0 + 10, T0 + 13.5, "kill-one-replica")]


def test_summary_json_carries_the_analyzers_own_latency_stats(tmp_path: Path) -> None:
    data = load_run(write_run_dir(tmp_path, RunSpec(kind="pass")), hash_files=False)
    assert data.measurements is not None and data.measurements.latency is not None
    assert summarize(data).measurements.latency == data.measurements.latency.phases


def test_a_summary_an_older_drillbit_wrote_is_refused_with_how_to_rebuild_it(tmp_path: Path) -> None:
    """trend and compare read summary.json by its schema: a /1 file is named with the command that rebuilds it."""
    old = tmp_path / "summary.json"
    old.write_text(json.dumps({"schema": "drillbit.summary/1", "run": {}}))
    with pytest.raises(ConfigError, match=r"older drillbit \(drillbit.summary/1.*drill report"):
        read_summary(old)
