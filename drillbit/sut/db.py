"""Schema management for the trading API."""

from __future__ import annotations

from pathlib import Path

import psycopg

__all__ = ["migrate"]

_LOCK_KEY = 7_203_101  # advisory lock: one migration at a time across replicas


def migrate(dsn: str) -> None:
    """Create the schema if it is missing (idempotent; concurrent callers serialize)."""
    ddl = (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(ddl.encode())  # trusted, packaged DDL
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
