"""The sandbox's replication: each replica's lag behind the primary, read from PostgreSQL itself
(a slow replication link makes it grow: ``Network.degrade_replication``).

The lag is what a promotion would lose, the way the platform's ``ReplicationLagAboveRpo`` rule
reads it (infra/monitoring/rules/database.yml), but straight from the databases rather than
through Patroni and Prometheus: each node is asked directly (the observer goes around the links)
for its position (a replica's replayed WAL and the commit time of the last transaction it
replayed; the primary's flushed WAL and its clock). A replica with WAL still to replay is
``now - last replayed commit`` seconds behind; one with nothing left to replay is 0 behind (an
idle primary's last commit may be old). Replicas are asked before the primary, so a commit landing
between the two reads counts against the replica: the figure errs high, never low.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from drillbit.core.errors import EnvironmentFailure
from drillbit.targets.sandbox.links import LOOPBACK

if TYPE_CHECKING:
    from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = ["lsn", "replication_lag"]

CONNECT_TIMEOUT_S = 1
_POSITION = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END::text,
       extract(epoch FROM pg_last_xact_replay_timestamp())::float8,
       extract(epoch FROM clock_timestamp())::float8
"""


def lsn(text: str) -> int:
    """A PostgreSQL LSN (``16/B374D848``) as a byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def _position(sb: Sandbox, region: str) -> tuple[bool, int | None, float | None, float]:
    topo, port = sb.topology, sb.state.port_map.postgres[region]
    conninfo = (f"host={LOOPBACK} port={port} dbname={topo.database.name} user={topo.database.user} "
                f"passfile={sb.layout.pgpass} connect_timeout={CONNECT_TIMEOUT_S} "
                f"options='-c statement_timeout=2000'")  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(_POSITION).fetchone()
    assert row is not None
    recovering, position, replayed_at, now = row
    return bool(recovering), None if position is None else lsn(position), replayed_at, float(now)


def replication_lag(sb: Sandbox) -> list[dict[str, Any]]:
    """One row per replica: ``member`` (its region), ``lag_s``, ``lag_bytes``, ``ok`` and ``error``
    (a replica that could not be read: its lag unmeasured, never 0). Raises EnvironmentFailure when
    no node (or more than one) is a primary: lag behind whom is then undefined."""
    replicas: dict[str, tuple[int | None, float | None] | str] = {}
    primary: tuple[str, int, float] | None = None
    for region in sb.regions:  # replicas first: see the module's docstring
        try:
            recovering, position, replayed_at, now = _position(sb, region)
        except (psycopg.Error, OSError) as err:
            replicas[region] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            continue
        if recovering:
            replicas[region] = (position, replayed_at)
        elif primary is not None:
            raise EnvironmentFailure(f"two primaries ({primary[0]}, {region}): replication lag undefined")
        else:
            primary = (region, position or 0, now)
    if primary is None:
        raise EnvironmentFailure("no primary answered: replication lag undefined")
    _, head, now = primary
    rows: list[dict[str, Any]] = []
    for region, seen in replicas.items():
        if isinstance(seen, str):
            rows.append({"member": region, "lag_s": None, "lag_bytes": None, "ok": False, "error": seen})
            continue
        position, replayed_at = seen
        if position is None:  # a replica that has replayed nothing yet (just built)
            rows.append({"member": region, "lag_s": None, "lag_bytes": None, "ok": False,
                         "error": "the replica has replayed no WAL yet"})  # fmt: skip
            continue
        behind = max(0, head - position)
        lag_s = 0.0 if behind == 0 else (max(0.0, now - replayed_at) if replayed_at is not None else None)
        rows.append({"member": region, "lag_s": lag_s, "lag_bytes": behind, "ok": lag_s is not None,
                     "error": None if lag_s is not None else "WAL to replay but no replayed commit time"})  # fmt: skip
    return rows
