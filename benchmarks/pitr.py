"""Point-in-time restore at scale: a sandbox with backups, N orders (100,000 by default) and their
trades, a base backup, more orders written while the WAL is archived, T marked, a disaster, and
the restore to T into a fresh node, verified row for row. Prints the restore time and its parts
against the 15 min RTO (R9.4), the bucket's size, and the rows compared.

    python -m benchmarks.pitr [--orders 100000] [--after-backup 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import psycopg

from drillbit.targets.sandbox import sandbox
from drillbit.targets.sandbox.backups import CREDENTIALS
from drillbit.targets.sandbox.pointintime import PointInTime
from drillbit.targets.sandbox.render import SUPERUSER
from drillbit.targets.sandbox.sandbox import Sandbox

RESTORE_TARGET_S = 900.0  # R9.4: RTO < 15 min

#: n orders on 500 symbols, half of them crossed into trades (one statement: the bulk the drill does not measure)
_SEED = """
WITH o AS (
    INSERT INTO orders (client_order_id, symbol, side, price, qty, remaining, status)
    SELECT 'bench-' || %(tag)s || '-' || g, 'SYM' || (g %% 500), CASE WHEN g %% 2 = 0 THEN 'buy' ELSE 'sell' END,
           100 + (g %% 7), 10, CASE WHEN g %% 4 < 2 THEN 0 ELSE 10 END,
           CASE WHEN g %% 4 < 2 THEN 'filled' ELSE 'open' END
    FROM generate_series(1, %(n)s) AS g
    RETURNING id, symbol, side, price, status
), pairs AS (
    SELECT b.id AS buy, s.id AS sell, b.symbol, b.price
    FROM (SELECT *, row_number() OVER (ORDER BY id) AS k FROM o WHERE side = 'buy' AND status = 'filled') b
    JOIN (SELECT *, row_number() OVER (ORDER BY id) AS k FROM o WHERE side = 'sell' AND status = 'filled') s
      USING (k)
)
INSERT INTO trades (symbol, price, qty, buy_order_id, sell_order_id) SELECT symbol, price, 10, buy, sell FROM pairs
"""


def _seed(sb: Sandbox, tag: str, n: int) -> float:
    port = sb.state.port_map.postgres[sb.primary() or sb.regions[0]]
    info = psycopg.conninfo.make_conninfo(host=str(sb.layout.run), port=port, dbname=sb.topology.database.name,
                                          user=SUPERUSER)  # fmt: skip
    t0 = time.monotonic()
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(_SEED, {"tag": tag, "n": n})
    return time.monotonic() - t0


def _bucket_bytes(endpoint: str) -> int:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                      aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="drillbit-backups")
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def run(orders: int, after_backup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / ".drill"
        sb = sandbox.up(state_dir=state, report=lambda _: None, monitoring=False, backups=True)
        try:
            pit = PointInTime(sb)
            seeded = _seed(sb, "base", orders)
            backup = pit.take_backup()
            replayed = _seed(sb, "after", after_backup)  # in the archive only: the restore replays it
            time.sleep(1.5)  # beyond the comparison's margin (1 s): every row seeded is compared
            mark = pit.mark_restore_point("bench")
            _seed(sb, "past", 1000)  # after T: must not come back
            disaster = pit.drop_orders()
            t0 = time.time()
            evidence = pit.restore_to_point(mark["target_time"], run_id=None, margin_s=1.0)
            restore_s = time.time() - t0
            bucket = _bucket_bytes(pit.store.endpoint)
            pit.heal_data()
        finally:
            sandbox.down(state, report=lambda _: None)
    if not evidence["restored"]:
        raise SystemExit(f"the restore failed: {evidence.get('error')}")
    tables = evidence["tables"]
    return {"orders": orders, "seed_s": seeded, "backup_s": backup["took_s"], "after_backup": after_backup,
            "after_backup_s": replayed, "restore_s": restore_s, "since_disaster_s": evidence["served_at"]
            - disaster["dropped_at"], "catch_up_s": evidence["archive"]["catch_up_s"],
            "download_s": evidence["download_s"], "replay_s": evidence["replay_s"], "bucket_mib": bucket / 2**20,
            "compared": {k: t["compared"] for k, t in tables.items()},
            "mismatched": sum(t["missing_count"] + t["extra_count"] for t in tables.values()),
            "after_target": sum(t["after_target_count"] for t in tables.values())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--after-backup", type=int, default=20_000)
    args = parser.parse_args([] if __name__ != "__main__" else None)  # from `make bench`: the defaults
    r = run(args.orders, args.after_backup)
    print(f"seeded {r['orders']:,} orders (+ trades) in {r['seed_s']:.1f} s; base backup {r['backup_s']:.1f} s; "
          f"{r['after_backup']:,} more orders after it ({r['after_backup_s']:.1f} s), replayed from the archive")
    print(f"restore to T: {r['since_disaster_s']:.1f} s from the disaster (archive catch-up {r['catch_up_s']:.2f} s, "
          f"download {r['download_s']:.1f} s, replay and promotion {r['replay_s']:.1f} s); target < "
          f"{RESTORE_TARGET_S:.0f} s (R9.4): {r['since_disaster_s'] / RESTORE_TARGET_S:.3f} of it")
    print(f"verified: rows compared {r['compared']}, mismatched {r['mismatched']}, created after T restored "
          f"{r['after_target']}; bucket {r['bucket_mib']:.0f} MiB (base backup uncompressed, WAL gzip'd)")


if __name__ == "__main__":
    main()
