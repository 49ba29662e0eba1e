"""Point-in-time recovery on the data drills' sandbox (backups enabled: tests/e2e/data/conftest.py):
WAL archived to moto's S3 server by barman-cloud-wal-archive, base backups and restores with Barman's cloud scripts.

Ground truth written around the drill: marker orders the test commits itself on either side of T
(the restored node must hold every one before it and none after), a target the archive cannot
reach (the restore must fail, never pass), and the whole pitr-restore drill, whose disaster must
be healed afterwards (the orders table back, no restored node left running).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from drillbit.core.results import MEASUREMENTS, VERDICTS, Measurements, Outcome, VerdictSet, read_model
from drillbit.plan import load_plan
from drillbit.runner import RunOptions, run_drill
from drillbit.targets.sandbox import procs
from drillbit.targets.sandbox.backups import RESTORE_UNIT
from drillbit.targets.sandbox.pointintime import DROPPED, PointInTime
from drillbit.targets.sandbox.render import SUPERUSER
from drillbit.targets.sandbox.sandbox import Sandbox
from tests.e2e.data.interrupt import sigint_when
from tests.e2e.outcomes import passed_or_saturated

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENT = ROOT / "experiments" / "pitr-restore.yaml"


def _primary(sb: Sandbox, dbname: str) -> psycopg.Connection[Any]:
    port = sb.state.port_map.postgres[sb.primary() or sb.regions[0]]
    info = psycopg.conninfo.make_conninfo(host=str(sb.layout.run), port=port, dbname=dbname, user=SUPERUSER)
    return psycopg.connect(info, autocommit=True)


def _markers(sb: Sandbox, tag: str, n: int) -> list[str]:
    """``n`` resting orders on a symbol of their own, each committed on its own (the test's ledger)."""
    ids = [f"gt-{tag}-{i}" for i in range(n)]
    with _primary(sb, sb.topology.database.name) as conn:
        for cid in ids:
            conn.execute("INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status) "
                         "VALUES (%s, 'GT-PITR', 'buy', 1, 1, 1, 'open')", (cid,))  # fmt: skip
    return ids


def _no_restored_node(sb: Sandbox) -> None:
    assert procs.tagged(sb.state.id, RESTORE_UNIT) == []
    assert not (sb.layout.root / "restores" / "pitr").exists()


def test_a_restore_to_t_holds_every_row_committed_before_it_and_none_after(data_sandbox: Sandbox) -> None:
    pit = PointInTime(data_sandbox)
    backup = pit.take_backup()
    assert backup["backup_id"] and backup["end_at"] <= time.time(), backup
    run = uuid.uuid4().hex[:8]
    before = _markers(data_sandbox, f"{run}-before", 40)
    time.sleep(0.3)
    mark = pit.mark_restore_point(f"gt-{run}")
    time.sleep(0.3)
    after = _markers(data_sandbox, f"{run}-after", 30)
    try:
        # the markers commit one by one, at once: a margin of 0.2 s leaves none of them out of the comparison
        evidence = pit.restore_to_point(mark["target_time"], run_id=None, margin_s=0.2)
        assert evidence["restored"], evidence.get("error")
        assert evidence["archive"]["caught_up"], evidence["archive"]
        info = psycopg.conninfo.make_conninfo(host=str(pit.node_dir / "run"), port=evidence["port"],
                                              dbname=data_sandbox.topology.database.name, user=SUPERUSER)  # fmt: skip
        with psycopg.connect(info, autocommit=True) as restored:
            present = {r[0] for r in restored.execute("SELECT client_order_id FROM orders WHERE "
                                                      "starts_with(client_order_id, %s)", (f"gt-{run}-",))}  # fmt: skip
        assert present == set(before), (len(present & set(before)), len(present & set(after)))
        orders = evidence["tables"]["orders"]
        assert orders["compared"] >= len(before) and orders["missing_count"] == orders["extra_count"] == 0, orders
        assert orders["after_target_count"] == 0 and evidence["tables"]["trades"]["missing_count"] == 0, evidence
    finally:
        pit.heal_data()
    _no_restored_node(data_sandbox)


def test_a_target_the_archive_cannot_reach_fails_the_restore_never_passes(data_sandbox: Sandbox) -> None:
    pit = PointInTime(data_sandbox)
    try:
        evidence = pit.restore_to_point(time.time() + 3600, run_id=None)
    finally:
        pit.heal_data()
    assert evidence["restored"] is False and "tables" not in evidence, evidence
    assert "recovery target" in evidence["error"], evidence["error"]
    _no_restored_node(data_sandbox)


def _shorter_pauses(experiment: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The experiment with each pause cut to ``seconds`` (CI time; ~20 heartbeat orders still fall in 2 s)."""
    exp = json.loads(json.dumps(experiment))
    for activity in exp["method"]:
        if "pauses" in activity:
            activity["pauses"] = {k: min(v, seconds) for k, v in activity["pauses"].items()}
    return exp


def _plan() -> Any:
    plan = load_plan(EXPERIMENT)
    plan = dataclasses.replace(plan, experiment=_shorter_pauses(plan.experiment, 2.0))
    return dataclasses.replace(plan, settings=plan.settings.model_copy(update={"baseline_s": 3.0, "cooldown_s": 3.0}))


def test_pitr_restore_drill_passes_with_the_restore_time_measured_and_heals_the_disaster(
    data_sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_drill(_plan(), RunOptions(state_dir=data_sandbox.layout.state_dir, out=tmp_path / "runs", tty=False,
                                           say=print))  # fmt: skip
    m = read_model(result.run_dir / MEASUREMENTS, Measurements)
    verdicts = read_model(result.run_dir / VERDICTS, VerdictSet)
    print({v.sla: (v.verdict.value, v.measured) for v in verdicts.verdicts})
    p = m.pitr
    assert p is not None, m.unmeasured
    print(f"pitr: restore {p.restore_time_s:.2f} s (download {p.download_s:.2f}, replay {p.replay_s:.2f}, archive "
          f"catch-up {p.archive_catch_up_s:.2f}), backup age {p.backup_age_s:.1f} s, WAL archive age "
          f"{p.wal_archive_age_s:.1f} s, {p.heartbeat_acked_before_target} acked before T, rows compared "
          f"{ {k: t.compared for k, t in p.tables.items()} }")  # fmt: skip
    judged = {v.sla: v for v in verdicts.verdicts}
    for sla in ("restore_time", "pitr_lost_writes", "pitr_overshoot", "pitr_rows", "backup_age", "wal_archive_age",
                "rto", "lost_writes", "integrity"):  # fmt: skip
        assert judged[sla].verdict is Outcome.PASS, judged[sla]  # none of them judged by the load generator
    passed_or_saturated(result)
    disaster = next(f for f in m.faults if f.action == "drillbit.faults.drop_orders")
    assert disaster.landed and disaster.reverted_at is not None, disaster
    assert p.restored and p.lost_writes == 0 and p.overshoot == 0 and p.mismatched_rows == 0, p
    assert p.heartbeat_acked_before_target >= 20, p  # the ledger proved something: seconds of heartbeats before T
    assert p.restore_time_s is not None and 0 < p.restore_time_s < 120, p
    assert p.tables["orders"].compared > 0, p.tables
    with _primary(data_sandbox, data_sandbox.topology.database.name) as conn:  # healed: the table is back, not aside
        row = conn.execute("SELECT to_regclass('orders') IS NOT NULL, to_regclass(%s) IS NULL", (DROPPED,)).fetchone()
    assert row == (True, True)
    _no_restored_node(data_sandbox)


def test_sigint_after_the_disaster_puts_the_orders_table_back(data_sandbox: Sandbox, tmp_path: Path) -> None:
    """Interrupted right after the disaster lands (no base backup first: the heal is what is tested)."""
    exp = _shorter_pauses(yaml.safe_load(EXPERIMENT.read_text()), 1.0)
    exp["method"] = [a for a in exp["method"] if a["name"] != "base-backup"]

    def dropped() -> bool:
        with _primary(data_sandbox, data_sandbox.topology.database.name) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (DROPPED,)).fetchone()
        return bool(row and row[0])

    code, output = sigint_when(data_sandbox, exp, tmp_path, dropped, windows_s=3)
    assert code == 3, output[-3000:]  # interrupted: INCONCLUSIVE, what it measured kept
    assert not dropped()
    with _primary(data_sandbox, data_sandbox.topology.database.name) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0  # type: ignore[index]
    _no_restored_node(data_sandbox)
