"""The point-in-time restore's analyzer and verdicts, against ledgers and restored rows written here.

Ground truth: a heartbeat ledger of known sends and acknowledgements around T, and the set of
sequence numbers the "restored node" holds. A restore that stops short of T loses writes
acknowledged before it (FAIL), one that runs past T brings back writes sent after it (FAIL), one
that never serves FAILs its restore time and leaves the row figures unmeasured (never 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.measurements import PitrMeasurement
from drillbit.core.results import Fault, Measurements, Outcome
from drillbit.core.rundir import HEARTBEAT, HEARTBEAT_SCHEMA, PITR
from drillbit.probes.pitr import DISASTER_ACTION, analyze_pitr
from drillbit.sla import load_sla_file, slas_for
from drillbit.verdicts import evaluate

T0 = 1_800_000_000.0
TARGET = T0 + 10.0  # T: heartbeats every 0.1 s from T0, each acknowledged 5 ms after its send
DISASTER = T0 + 15.0
SEQS = range(200)  # sent T0 .. T0 + 19.9


def _sent(seq: int) -> float:
    return T0 + seq * 0.1


def _run_dir(tmp_path: Path, present: list[int] | None, *, restored: bool = True, error: str | None = None,
             tables: dict[str, Any] | None = None) -> Path:  # fmt: skip
    rows = [{"seq": s, "sent": _sent(s), "acked": _sent(s) + 0.005, "outcome": "acked", "error": None} for s in SEQS]
    (tmp_path / "samples").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=HEARTBEAT_SCHEMA), tmp_path / HEARTBEAT)
    evidence: dict[str, Any] = {
        "target_time": TARGET, "margin_s": 5.0, "bucket": "s3://drillbit-backups/sandbox", "restored": restored,
        "started_at": DISASTER + 0.5, "archive": {"last_archived_at": DISASTER - 4.0, "caught_up": True,
                                                  "catch_up_s": 0.8},
        "backup": {"backup_id": "20261202T230000", "end_at": T0 - 30.0},
    }  # fmt: skip
    if restored:
        evidence.update(served_at=DISASTER + 9.0, download_s=1.5, replay_s=3.0, heartbeat_seqs=present,
                        last_replayed_commit_at=TARGET - 0.05, tables=tables or {"orders": _table()})  # fmt: skip
    else:
        evidence["error"] = error
    (tmp_path / PITR).write_text(json.dumps(evidence))
    return tmp_path


def _table(missing: int = 0, extra: int = 0, after: int = 0) -> dict[str, Any]:
    return {"compared": 1000, "restored_rows": 1000 - missing + extra, "missing_count": missing,
            "missing": list(range(missing))[:50], "extra_count": extra, "extra": [], "after_target_count": after,
            "after_target": []}  # fmt: skip


DISASTER_FAULT = Fault(activity="lose-the-orders-table", action=DISASTER_ACTION, injected_at=DISASTER, landed=True)
BEFORE_T = [s for s in SEQS if _sent(s) + 0.005 < TARGET]  # acknowledged before T: must be restored


def _verdicts(run_dir: Path) -> dict[str, Any]:
    pitr = PitrMeasurement.model_validate(analyze_pitr(run_dir, [DISASTER_FAULT]))
    slas = slas_for(load_sla_file(), "pitr-restore")
    names = ["restore_time", "pitr_lost_writes", "pitr_overshoot", "pitr_rows", "backup_age", "wal_archive_age"]
    m = Measurements(fault_at=DISASTER, faults=[DISASTER_FAULT], pitr=pitr)
    result = evaluate(m, {k: slas[k] for k in names})
    return {v.sla: v for v in result.verdicts}


def test_a_restore_that_holds_exactly_the_writes_before_t_passes(tmp_path: Path) -> None:
    p = analyze_pitr(_run_dir(tmp_path, BEFORE_T), [DISASTER_FAULT])
    assert p["lost_writes"] == 0 and p["overshoot"] == 0 and p["mismatched_rows"] == 0
    assert p["heartbeat_acked_before_target"] == len(BEFORE_T) == 100
    assert p["restore_time_s"] == pytest.approx(9.0) and p["backup_age_s"] == pytest.approx(45.0)
    assert p["wal_archive_age_s"] == pytest.approx(4.5)
    assert all(v.verdict is Outcome.PASS for v in _verdicts(tmp_path).values())


def test_a_restore_that_stopped_short_of_t_loses_acknowledged_writes_and_fails(tmp_path: Path) -> None:
    """Recovery stopped 2 s early (an archive gap, a wrong target): the last 20 acknowledged orders are gone."""
    short = [s for s in BEFORE_T if _sent(s) < TARGET - 2.0]
    p = analyze_pitr(_run_dir(tmp_path, short), [DISASTER_FAULT])
    assert p["lost_writes"] == 20 and p["heartbeat_lost_seqs"][0] == 80
    v = _verdicts(tmp_path)
    assert v["pitr_lost_writes"].verdict is Outcome.FAIL and v["pitr_lost_writes"].measured == 20


def test_a_restore_past_t_brings_back_writes_sent_after_it_and_fails(tmp_path: Path) -> None:
    past = [s for s in SEQS if _sent(s) < TARGET + 1.0]
    p = analyze_pitr(_run_dir(tmp_path, past, tables={"orders": _table(after=7)}), [DISASTER_FAULT])
    after_t = [s for s in past if _sent(s) > TARGET]
    assert len(after_t) >= 9 and p["heartbeat_after_target_present"] == len(after_t)
    assert p["overshoot"] == len(after_t) + 7
    assert _verdicts(tmp_path)["pitr_overshoot"].verdict is Outcome.FAIL


def test_rows_missing_or_changed_in_the_restored_node_fail(tmp_path: Path) -> None:
    _run_dir(tmp_path, BEFORE_T, tables={"orders": _table(missing=3), "trades": _table(extra=2)})
    v = _verdicts(tmp_path)
    assert v["pitr_rows"].verdict is Outcome.FAIL and v["pitr_rows"].measured == 5


def test_a_restore_that_never_served_fails_its_time_and_measures_no_rows(tmp_path: Path) -> None:
    """A target the archive cannot reach: postgres stops with FATAL; never a PASS, never a 0 lost."""
    why = "the restored postgres exited 1: FATAL:  recovery ended before configured recovery target was reached"
    p = analyze_pitr(_run_dir(tmp_path, None, restored=False, error=why), [DISASTER_FAULT])
    assert p["lost_writes"] is None and p["mismatched_rows"] is None and p["restore_time_s"] is None
    v = _verdicts(tmp_path)
    assert v["restore_time"].verdict is Outcome.FAIL and "recovery ended before" in (v["restore_time"].reason or "")
    for name in ("pitr_lost_writes", "pitr_overshoot", "pitr_rows"):
        assert v[name].verdict is Outcome.INCONCLUSIVE, v[name]


def test_no_acknowledged_write_before_t_proves_nothing(tmp_path: Path) -> None:
    """Every heartbeat failed before T: 0 lost is no evidence (INCONCLUSIVE, not PASS)."""
    run = _run_dir(tmp_path, [])
    rows = [{"seq": s, "sent": _sent(s), "acked": float("nan"), "outcome": "failed", "error": "http"} for s in SEQS]
    pq.write_table(pa.Table.from_pylist(rows, schema=HEARTBEAT_SCHEMA), run / HEARTBEAT)
    assert _verdicts(run)["pitr_lost_writes"].verdict is Outcome.INCONCLUSIVE


def test_a_drill_without_a_restore_leaves_the_pitr_slas_inconclusive() -> None:
    slas = slas_for(load_sla_file(), "pitr-restore")
    m = Measurements(fault_at=DISASTER, faults=[DISASTER_FAULT], unmeasured={"pitr": "no point-in-time restore"})
    result = evaluate(m, {"restore_time": slas["restore_time"], "pitr_lost_writes": slas["pitr_lost_writes"]})
    assert [v.verdict for v in result.verdicts] == [Outcome.INCONCLUSIVE, Outcome.INCONCLUSIVE]


def test_only_a_drill_that_restores_from_backups_asks_the_sandbox_for_them() -> None:
    """drill run starts the sandbox with backups for pitr-restore, as it is for every other experiment."""
    import yaml

    from drillbit.faults import needs_backups

    experiments = Path(__file__).resolve().parents[2] / "experiments"
    needing = {p.stem for p in experiments.glob("*.yaml") if needs_backups(yaml.safe_load(p.read_text()) or {})}
    assert needing == {"pitr-restore"}
