"""Ground truth for RPO, without the analyzer: what the database says about a drill's heartbeat."""

from __future__ import annotations

import json

import pandas as pd
import psycopg

from drillbit.core.rundir import HEARTBEAT
from drillbit.runner import DrillResult

__all__ = ["lost_by_the_database"]


def lost_by_the_database(result: DrillResult, dsn: str) -> list[int]:
    """Acknowledged heartbeat orders absent from the orders table."""
    beats = pd.read_parquet(result.run_dir / HEARTBEAT)
    acked = set(beats.loc[beats["outcome"] == "acked", "seq"].astype(int))
    run_id = json.loads((result.run_dir / "samples" / "heartbeat.json").read_text())["run_id"]
    prefix = f"hb-{run_id}-"
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT client_order_id FROM orders WHERE starts_with(client_order_id, %s)", (prefix,))
        present = {int(r[0][len(prefix):]) for r in rows}
    return sorted(acked - present)
