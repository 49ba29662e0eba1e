"""Point-in-time recovery on the sandbox: base backup, restore point, the disaster, the restore, the heal.

The pitr-restore drill (experiments/pitr-restore.yaml) calls these through ``drillbit.faults``:

- ``take_backup``: a base backup of the primary to the bucket while orders flow (WAL archiving runs
  all along: topology ``backups: {enabled: true}``);
- ``mark_restore_point``: T, the time to restore to (and ``pg_create_restore_point`` for the record);
- ``drop_orders``: the disaster. The orders table is gone for the application, which fails every
  order from then on. (The sandbox moves it aside, ``drillbit_dropped_orders``, rather than
  dropping it, so the rollback can put it back exactly and later drills run on an intact
  database; a real DROP's only way back is the restore being drilled.) Landed when ``orders`` no
  longer resolves;
- ``restore_to_point``: what an operator does. The WAL up to now is archived (``pg_switch_wal``, and
  the archiver waited for, bounded). The newest base backup that ended before T is restored into
  a fresh node with ``recovery_target_time = T``. Once the node serves, its rows are compared
  with the source's, which the disaster kept aside:
  - the heartbeat's orders present (checked later against the client's own ledger);
  - every order and trade created before T - ``margin_s`` present with the same immutable
    columns: none missing, none extra;
  - nothing created after T present;
- ``heal_data``: the rollback. The restored node stops and its files go; the orders table is put
  back (merged, should a restarted replica have created an empty one meanwhile).

``margin_s``: rows created in the last ``margin_s`` before T may or may not have committed
before it (a transaction commits after its rows' ``created_at``): they are left out of the row
comparison. The heartbeat's ledger covers that edge exactly: acknowledged before T means
committed before T.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import sql

from drillbit.core.errors import ConfigError
from drillbit.targets.sandbox import backups, procs
from drillbit.targets.sandbox.backups import RestoredNode, RestoreFailed, Store
from drillbit.targets.sandbox.render import SUPERUSER, backup_store
from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = ["DROPPED", "MARGIN_S", "PointInTime"]

log = logging.getLogger(__name__)

DROPPED = "drillbit_dropped_orders"
MARGIN_S = 5.0
ARCHIVE_WAIT_S = 60.0
MAX_IDS = 50  # ids kept per kind of difference (the counts are exact)
#: immutable columns per table (what a row was created with; fills and cancels change the rest later)
COLUMNS = {
    "orders": ("id", "client_order_id", "symbol", "side", "price", "qty", "created_at"),
    "trades": ("id", "symbol", "price", "qty", "buy_order_id", "sell_order_id", "created_at"),
}


class PointInTime:
    """The point-in-time recovery operations of one sandbox (needs ``backups.enabled``)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        store = backup_store(sandbox.state.port_map)
        if store is None:
            raise ConfigError("topology backups.enabled", "the sandbox runs without backups: set backups: "
                                                          "{enabled: true} in infra/sandbox/topology.yaml and "
                                                          "`drill env down` then `drill env up`")  # fmt: skip
        self.store: Store = store
        self.node_dir = sandbox.layout.root / "restores" / "pitr"

    # -- connections -----------------------------------------------------------------------------------
    def _primary_port(self) -> int:
        region = self.sb.primary()
        if region is None:
            raise RestoreFailed("no primary to back up or to read from")
        return int(self.sb.state.port_map.postgres[region])

    def _source(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """The primary, as the superuser over its unix socket (trusted locally; no password)."""
        info = psycopg.conninfo.make_conninfo(host=str(self.sb.layout.run), port=self._primary_port(),
                                              dbname=dbname or self.sb.topology.database.name, user=SUPERUSER,
                                              connect_timeout=5)  # fmt: skip
        return psycopg.connect(info, autocommit=True)

    # -- the drill's steps -----------------------------------------------------------------------------
    def take_backup(self) -> dict[str, Any]:
        name = f"drill-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 1_000_000:06d}"
        b = backups.take_base_backup(self.store, self.sb.layout.run, self._primary_port(), SUPERUSER, name)
        return {"backup_id": b.get("backup_id"), "backup_name": name, "begin_at": b["begin_epoch"],
                "end_at": b["end_epoch"], "took_s": b["took_s"], "bucket": self.store.url}  # fmt: skip

    def mark_restore_point(self, name: str) -> dict[str, Any]:
        with self._source("postgres") as conn:
            row = conn.execute("SELECT clock_timestamp(), pg_create_restore_point(%s)::text", (name,)).fetchone()
        assert row is not None
        return {"target_time": row[0].timestamp(), "lsn": row[1], "name": name}

    def drop_orders(self) -> dict[str, Any]:
        with self._source() as conn:
            gone = conn.execute("SELECT to_regclass('orders') IS NULL").fetchone()
            if gone and gone[0]:
                raise RestoreFailed("there is no orders table to drop (a disaster still unhealed?)")
            dropped_at = time.time()
            conn.execute(sql.SQL("ALTER TABLE orders RENAME TO {}").format(sql.Identifier(DROPPED)))
            row = conn.execute("SELECT to_regclass('orders') IS NULL, to_regclass(%s) IS NOT NULL",
                               (DROPPED,)).fetchone()  # fmt: skip
            kept = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(DROPPED))).fetchone()
        landed = bool(row and row[0] and row[1])
        return {"landed": landed, "dropped_at": dropped_at, "orders_kept_aside": int(kept[0]) if kept else None,
                "reason": None if landed else "the orders table still resolves after the drop"}  # fmt: skip

    def restore_to_point(self, target_time: float, run_id: str | None, margin_s: float = MARGIN_S) -> dict[str, Any]:
        """Archive, restore to ``target_time``, compare; the evidence (never raises for a failed restore)."""
        evidence: dict[str, Any] = {"target_time": target_time, "margin_s": margin_s, "bucket": self.store.url,
                                    "started_at": time.time(), "restored": False}  # fmt: skip
        try:
            evidence["archive"] = self._archive_now()
            chosen = self._backup_before(target_time)
            evidence["backup"] = chosen
            port = evidence["port"] = procs.free_ports([0])[0]
            node, took = backups.restore(self.store, str(chosen["backup_id"]), self.node_dir, target_time,
                                         port=port, sandbox_id=self.sb.state.id)  # fmt: skip
            evidence.update(restored=True, served_at=time.time(), **took)
            evidence.update(self._compare(node, target_time, run_id, margin_s))
        except (RestoreFailed, psycopg.Error, OSError) as err:
            evidence["error"] = str(err)
            log.error("point-in-time restore failed: %s", err)
        evidence["finished_at"] = time.time()
        return evidence

    def heal_data(self) -> dict[str, Any]:
        stopped = backups.stop(self.node_dir, self.sb.state.id)
        with self._source() as conn, conn.transaction():
            aside = conn.execute("SELECT to_regclass(%s) IS NOT NULL, to_regclass('orders') IS NOT NULL",
                                 (DROPPED,)).fetchone()  # fmt: skip
            restored_table, merged = False, 0
            if aside and aside[0]:
                if aside[1]:  # a replica restarted meanwhile and made a new, empty-then-written orders table
                    cur = conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM orders ON CONFLICT DO NOTHING")
                                       .format(sql.Identifier(DROPPED)))  # fmt: skip
                    merged = cur.rowcount
                    conn.execute("DROP TABLE orders CASCADE")
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO orders").format(sql.Identifier(DROPPED)))
                restored_table = True
        return {"restored_nodes_stopped": stopped, "orders_table_put_back": restored_table, "merged_rows": merged}

    # -- the restore's parts ---------------------------------------------------------------------------
    def _archive_now(self) -> dict[str, Any]:
        """Archive the WAL written so far (what an operator does before a restore when the primary is
        alive), and say how old the newest archived WAL was before that."""
        with self._source("postgres") as conn:
            before = conn.execute("SELECT last_archived_wal, extract(epoch FROM last_archived_time)::float8, "
                                  "failed_count FROM pg_stat_archiver").fetchone()  # fmt: skip
            # a commit after T in the WAL: recovery to a time stops at the first commit past it, and runs
            # off the end of the archive (FATAL) when an idle database committed nothing since
            conn.execute("SELECT pg_current_xact_id()")
            row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
            current = row[0] if row else ""
            conn.execute("SELECT pg_switch_wal()")
            t0 = time.monotonic()
            caught_up = False
            while time.monotonic() - t0 < ARCHIVE_WAIT_S:
                last = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                if last and last[0] and last[0][8:] >= current[8:]:  # same or later segment (any timeline)
                    caught_up = True
                    break
                time.sleep(0.1)
        return {"last_archived_wal": before[0] if before else None,
                "last_archived_at": before[1] if before else None, "failed_count": int(before[2]) if before else None,
                "wal_at_restore": current, "caught_up": caught_up, "catch_up_s": time.monotonic() - t0}  # fmt: skip

    def _backup_before(self, target_time: float) -> dict[str, Any]:
        done = [b for b in backups.list_backups(self.store)
                if b.get("status") == "DONE" and b["end_epoch"] is not None
                and b["end_epoch"] <= target_time]  # fmt: skip
        if not done:
            raise RestoreFailed(f"no base backup in {self.store.url} ended before the target time: take one first")
        b = done[-1]
        return {"backup_id": b.get("backup_id"), "backup_name": b.get("backup_name"), "begin_at": b["begin_epoch"],
                "end_at": b["end_epoch"]}  # fmt: skip

    def _compare(self, node: RestoredNode, target_time: float, run_id: str | None, margin_s: float) -> dict[str, Any]:
        db = self.sb.topology.database.name
        out: dict[str, Any] = {"tables": {}}
        with psycopg.connect(node.conninfo(db, SUPERUSER), autocommit=True) as restored, self._source() as source:
            row = restored.execute("SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::float8").fetchone()
            out["last_replayed_commit_at"] = row[0] if row else None
            aside = source.execute("SELECT to_regclass(%s) IS NOT NULL", (DROPPED,)).fetchone()
            for table, cols in COLUMNS.items():
                src_name = DROPPED if table == "orders" and aside and aside[0] else table
                out["tables"][table] = _table_diff(source, src_name, restored, table, cols, target_time, margin_s)
            if run_id:
                prefix = f"hb-{run_id}-"
                rows = restored.execute("SELECT substr(client_order_id, %s)::bigint FROM orders "
                                        "WHERE starts_with(client_order_id, %s)",
                                        (len(prefix) + 1, prefix)).fetchall()  # fmt: skip
                out["heartbeat_seqs"] = sorted(int(r[0]) for r in rows)
        return out


def _rows(conn: psycopg.Connection[Any], table: str, cols: tuple[str, ...], where: sql.Composable,
          params: tuple[Any, ...]) -> dict[int, str]:  # fmt: skip
    """id -> md5 of the row's immutable columns."""
    query = sql.SQL("SELECT id, md5(row({cols})::text) FROM {table} WHERE {where}").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)), table=sql.Identifier(table), where=where)
    return {int(i): str(h) for i, h in conn.execute(query, params).fetchall()}


def _table_diff(
    source: psycopg.Connection[Any], src_table: str, restored: psycopg.Connection[Any], table: str,
    cols: tuple[str, ...], target_time: float, margin_s: float,
) -> dict[str, Any]:  # fmt: skip
    before = sql.SQL("created_at < to_timestamp(%s)")
    cutoff = (target_time - margin_s,)
    want, got = _rows(source, src_table, cols, before, cutoff), _rows(restored, table, cols, before, cutoff)
    missing = sorted(i for i, h in want.items() if got.get(i) != h)  # absent, or not as it was created
    extra = sorted(i for i in got if i not in want)
    after = _rows(restored, table, cols, sql.SQL("created_at > to_timestamp(%s)"), (target_time,))
    return {"compared": len(want), "restored_rows": len(got), "missing_count": len(missing),
            "missing": missing[:MAX_IDS], "extra_count": len(extra), "extra": extra[:MAX_IDS],
            "after_target_count": len(after),
            "after_target": sorted(after)[:MAX_IDS]}  # fmt: skip
