"""The integrity SLA: its reader, the run directory's samples file, the shipped checks and the report section.

Ground truth for the SQL itself (each invariant corrupted in a real PostgreSQL) is in
tests/integration/test_integrity.py; here, no database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drillbit import reports
from drillbit.core.clock import Clock
from drillbit.core.errors import ConfigError
from drillbit.core.project import find_project
from drillbit.core.results import (
    IntegrityCheckResult,
    IntegrityMeasurement,
    IntegrityViolation,
    Measurements,
    Outcome,
    read_model,
    write_model,
)
from drillbit.core.rundir import INTEGRITY
from drillbit.probes.integrity import analyze_integrity, check_integrity, load_integrity_definitions
from drillbit.sla import load_sla_file, slas_for
from drillbit.verdicts import evaluate
from tests.unit.rundirs import RunSpec, write_run_dir

ROOT = Path(__file__).resolve().parents[2]
SLA = load_sla_file(ROOT / "experiments" / "slas.yaml").slas["integrity"]


def _check(name: str, violations: int | None, ids: tuple[str, ...] | list[str] = (),
           error: str | None = None) -> IntegrityCheckResult:
    return IntegrityCheckResult(name=name, description=name, violations=violations, error=error, elapsed_s=0.01,
                                ids=[IntegrityViolation(id=i, detail="copies=0") for i in ids])  # fmt: skip


def _measured(*checks: IntegrityCheckResult) -> Measurements:
    section = IntegrityMeasurement(
        checked_at=1.0, source="probes/integrity.yaml", acked_orders=40,
        violations=sum(c.violations or 0 for c in checks),
        failed_checks=[c.name for c in checks if c.violations is None],
        checks=list(checks), elapsed_s=0.1, method="test")  # fmt: skip
    return Measurements(fault_at=1.0, integrity=section)


def _verdict(m: Measurements) -> Any:
    return evaluate(m, {"integrity": SLA}).verdicts[0]


def test_the_integrity_sla_is_inconclusive_without_a_result_and_says_why() -> None:
    m = Measurements(fault_at=1.0, unmeasured={"integrity": "the target has no database DSN"})
    v = _verdict(m)
    assert v.verdict is Outcome.INCONCLUSIVE and v.measured is None and v.reason == "the target has no database DSN"


def test_the_integrity_sla_fails_on_a_violation() -> None:
    v = _verdict(_measured(_check("acked_orders_exactly_once", 1, ["hb-r-7"]), _check("book_not_crossed", 0)))
    assert v.verdict is Outcome.FAIL and v.measured == 1
    assert (v.requirement, v.metric) == ("R13.4", "integrity_violations")
    assert "acked_orders_exactly_once 1" in v.how


def test_the_integrity_sla_passes_with_no_violation() -> None:
    v = _verdict(_measured(_check("acked_orders_exactly_once", 0), _check("book_not_crossed", 0)))
    assert v.verdict is Outcome.PASS and v.measured == 0


def test_a_check_that_could_not_run_makes_a_clean_result_inconclusive() -> None:
    v = _verdict(_measured(_check("acked_orders_exactly_once", 0), _check("book_not_crossed", None, error="timeout")))
    assert v.verdict is Outcome.INCONCLUSIVE and "book_not_crossed" in (v.reason or "")


def test_a_violation_fails_even_when_another_check_could_not_run() -> None:
    v = _verdict(_measured(_check("net_position_zero", 2, ["ACME", "BOLT"]), _check("book_not_crossed", None)))
    assert v.verdict is Outcome.FAIL


def test_no_dsn_is_recorded_and_analyzed_as_not_measured(tmp_path: Path) -> None:
    check_integrity(tmp_path, None, acked=[], clock=Clock())
    assert json.loads((tmp_path / INTEGRITY).read_text())["ran"] is False
    with pytest.raises(RuntimeError, match="no database DSN"):
        analyze_integrity(tmp_path)


def test_a_run_without_the_check_is_not_measured(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="did not run"):
        analyze_integrity(tmp_path)


def test_the_shipped_checks_cover_every_invariant() -> None:
    definitions, path = load_integrity_definitions(find_project(ROOT))
    assert path == ROOT / "probes" / "integrity.yaml" and definitions.enabled
    assert set(definitions.checks) == {"acked_orders_exactly_once", "client_order_ids_unique", "orders_not_overfilled",
                                       "trades_match_both_sides", "book_not_crossed", "net_position_zero",
                                       "id_sequences_ahead", "trade_sequence_gapless"}  # fmt: skip
    assert definitions.checks["acked_orders_exactly_once"].params == ["acked_client_order_ids"]


@pytest.mark.parametrize("experiment", ["pod-kill", "region-loss", "db-failover", "db-switchover", "rolling-update",
                                        "load-spike", "k8s-pod-kill", "k8s-zone-loss", "k8s-rolling-update",
                                        "k8s-db-primary-kill", "k8s-hpa-spike", "k8s-blue-green"])  # fmt: skip
def test_every_drill_of_the_reference_service_is_held_to_integrity(experiment: str) -> None:
    assert "integrity" in slas_for(load_sla_file(ROOT / "experiments" / "slas.yaml"), experiment)


def test_the_report_lists_violations_per_check_with_their_ids(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    m = read_model(d / "measurements.json", Measurements)
    many = [f"hb-r-{i}" for i in range(30)]
    section = _measured(_check("acked_orders_exactly_once", 30, many), _check("book_not_crossed", None, error="boom"))
    write_model(d / "measurements.json", m.model_copy(update={"integrity": section.integrity}))
    reports.build(d)
    html = (d / "report.html").read_text()
    part = html[html.index('<section id="integrity">'):]
    part = part[:part.index("</section>")]
    assert "hb-r-19" in part and "hb-r-20" not in part  # capped
    assert "not run" in part and "boom" in part


def test_a_drill_project_replaces_the_checks_and_a_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "drill.yaml").write_text("targets: {}\n")
    (tmp_path / "probes").mkdir()
    own = tmp_path / "probes" / "integrity.yaml"
    own.write_text("checks:\n  fills:\n    description: our fills balance\n    sql: SELECT id FROM fills WHERE false\n")
    definitions, path = load_integrity_definitions(find_project(tmp_path))
    assert path == own and list(definitions.checks) == ["fills"] and definitions.statement_timeout_ms == 10_000
    own.write_text("checks:\n  fills: {description: x, sql: SELECT 1, params: [run_secret]}\n")
    with pytest.raises(ConfigError, match=r"integrity\.yaml"):
        load_integrity_definitions(find_project(tmp_path))


def test_a_kubernetes_target_reads_its_dsn_from_the_variable_dsn_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from drillbit.targets.kubernetes import KubernetesSpec, KubernetesTarget

    spec = KubernetesSpec(context="staging", namespace="trading", api_url="https://api.example/", dsn_env="T_DSN")
    monkeypatch.delenv("T_DSN", raising=False)
    assert KubernetesTarget("staging", spec).endpoints().dsn is None  # unset: integrity INCONCLUSIVE, not PASS
    monkeypatch.setenv("T_DSN", "host=db.example dbname=trading")
    assert KubernetesTarget("staging", spec).endpoints().dsn == "host=db.example dbname=trading"
    assert KubernetesTarget("staging", spec, dsn="host=given").endpoints().dsn == "host=given"
