"""The point-in-time restore's analyzer: the restored node against the heartbeat's ledger and the source.

Input: ``samples/pitr.json`` (``drillbit.faults.restore_to_point``'s evidence), the heartbeat's own
records (``samples/heartbeat.parquet``: what the client was told, and when) and the drill's faults
(the disaster: ``drop_orders``). T is the restore's target time.

- lost writes: heartbeat orders acknowledged before T (so committed before T) absent from the
  restored node. Any is a FAIL: the restore stopped short of T, or the archive lost WAL;
- overshoot: heartbeat orders sent after T (so committed after it) present in the restored node,
  and rows created after T: the restore went past its target;
- mismatched rows: orders and trades created before T - margin that are missing from the restored
  node or differ in a column they were created with, and rows there that the source never had;
- restore time: the disaster -> the restored node serving (out of recovery, answering queries);
- backup age: the disaster -> the end of the base backup restored (R9.1: backups taken
  automatically and recently enough); WAL archive age: how old the newest archived WAL was when
  the restore began (what an operator could restore to had the primary been lost too).

A restore that did not produce a serving node has no rows to judge: its restore time is a FAIL
with postgres' or the tool's reason, the row figures are unmeasured (INCONCLUSIVE), never 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from drillbit.core.results import Fault
from drillbit.core.rundir import HEARTBEAT, HEARTBEAT_SCHEMA, PITR
from drillbit.probes.samplers import read_samples

__all__ = ["DISASTER_ACTION", "analyze_pitr"]

DISASTER_ACTION = "drillbit.faults.drop_orders"
MAX_SEQS = 50


def analyze_pitr(run_dir: Path | str, faults: list[Fault]) -> dict[str, Any]:
    """The ``pitr`` measurement section (drillbit.core.measurements.PitrMeasurement)."""
    d = Path(run_dir)
    evidence = json.loads((d / PITR).read_text(encoding="utf-8"))
    target = float(evidence["target_time"])
    disaster = next((f for f in faults if f.action == DISASTER_ACTION), None)
    disaster_at = disaster.injected_at if disaster else None
    served_at = evidence.get("served_at")
    backup = evidence.get("backup") or {}
    archive = evidence.get("archive") or {}
    tables = evidence.get("tables") or {}
    out: dict[str, Any] = {
        "target_time": target, "disaster_at": disaster_at, "restored": bool(evidence.get("restored")),
        "error": evidence.get("error"), "bucket": evidence.get("bucket"),
        "restore_time_s": served_at - disaster_at if served_at is not None and disaster_at is not None else None,
        "download_s": evidence.get("download_s"), "replay_s": evidence.get("replay_s"),
        "backup_id": backup.get("backup_id"), "backup_end_at": backup.get("end_at"),
        "backup_age_s": (disaster_at - backup["end_at"]) if disaster_at is not None and backup.get("end_at") else None,
        "wal_archive_age_s": (evidence["started_at"] - archive["last_archived_at"])
        if archive.get("last_archived_at") is not None else None,
        "archive_caught_up": archive.get("caught_up"), "archive_catch_up_s": archive.get("catch_up_s"),
        "last_replayed_commit_at": evidence.get("last_replayed_commit_at"),
        "margin_s": float(evidence.get("margin_s", 0.0)), "tables": tables,
    }  # fmt: skip
    if not out["restored"]:
        return {**out, "lost_writes": None, "overshoot": None, "mismatched_rows": None}
    ledger = _ledger(d, target, evidence.get("heartbeat_seqs"))
    rows_after = sum(int(t["after_target_count"]) for t in tables.values())
    return {
        **out, **ledger,
        "lost_writes": ledger["heartbeat_lost"] if ledger["heartbeat_checked"] else None,
        "overshoot": (ledger["heartbeat_after_target_present"] or 0) + rows_after,
        "mismatched_rows": sum(int(t["missing_count"]) + int(t["extra_count"]) for t in tables.values()),
    }  # fmt: skip


def _ledger(run_dir: Path, target: float, present_seqs: list[int] | None) -> dict[str, Any]:
    """The heartbeat's acknowledged orders against what the restored node holds."""
    if present_seqs is None or not (run_dir / HEARTBEAT).exists():
        return {"heartbeat_checked": False, "heartbeat_acked_before_target": 0, "heartbeat_lost": None,
                "heartbeat_lost_seqs": [], "heartbeat_after_target_present": None,
                "heartbeat_after_target_seqs": []}  # fmt: skip
    hb = read_samples(run_dir / HEARTBEAT, HEARTBEAT_SCHEMA).to_pandas()
    present = np.asarray(sorted(set(present_seqs)), dtype=np.int64)
    seq = hb["seq"].to_numpy(dtype=np.int64)
    acked = (hb["outcome"].astype(object).to_numpy() == "acked") & (hb["acked"].to_numpy(dtype=float) < target)
    found = np.isin(seq, present)
    lost = np.sort(seq[acked & ~found])
    after = np.sort(seq[(hb["sent"].to_numpy(dtype=float) > target) & found])
    return {"heartbeat_checked": True, "heartbeat_acked_before_target": int(acked.sum()),
            "heartbeat_lost": int(lost.size), "heartbeat_lost_seqs": [int(s) for s in lost[:MAX_SEQS]],
            "heartbeat_after_target_present": int(after.size),
            "heartbeat_after_target_seqs": [int(s) for s in after[:MAX_SEQS]]}  # fmt: skip
