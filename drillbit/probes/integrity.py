"""Trading integrity after recovery: the project's integrity SQL, run read-only against the database.

After a drill has recovered (where the heartbeat is read back for RPO), the checker runs each
check of the project's ``probes/integrity.yaml`` (the shipped one fits the reference service's
schema; a team replaces the SQL for its own). A check is one SELECT returning the violating rows,
first column the id. The results go to ``samples/integrity.json`` (``INTEGRITY``):

- ``ran: false`` with the ``reason`` when the checker could not run (no DSN, the database
  unreachable after recovery, the check disabled): the integrity SLA is then INCONCLUSIVE;
- else each check's violation count and its first ``max_ids`` ids, or the error that stopped it
  (a timeout, a table the schema lacks): a check that did not run proves nothing.

Bounded and harmless: one connection, every statement in a read-only transaction
(``default_transaction_read_only``) with ``statement_timeout`` and ``lock_timeout``; each query is
wrapped to fetch at most ``ROW_LIMIT`` + 1 rows. :func:`analyze_integrity` turns the file into
measurements.json's ``integrity`` section.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.clock import Clock
from drillbit.core.project import Project
from drillbit.core.project import current as current_project
from drillbit.core.rundir import HEARTBEAT, HEARTBEAT_SCHEMA, INTEGRITY
from drillbit.core.safeio import write_text
from drillbit.core.yamlio import load_model_file
from drillbit.probes.rpo import heartbeat_order_id
from drillbit.probes.samplers import read_samples

__all__ = [
    "INTEGRITY_FILE",
    "ROW_LIMIT",
    "IntegrityCheck",
    "IntegrityDefinitions",
    "acked_heartbeat_orders",
    "analyze_integrity",
    "check_integrity",
    "load_integrity_definitions",
    "record_unavailable",
    "run_checks",
]

log = logging.getLogger(__name__)

INTEGRITY_FILE = ("probes", "integrity.yaml")
#: rows fetched per check at most (+1 to know there were more): the count is exact up to this
ROW_LIMIT = 10_000
#: what a check may name in ``params``
Param = Literal["acked_client_order_ids"]


class IntegrityCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(min_length=1)
    sql: str = Field(min_length=1)
    params: list[Param] = Field(default_factory=list)


class IntegrityDefinitions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    statement_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    max_ids: int = Field(default=50, ge=1, le=1_000)
    checks: dict[str, IntegrityCheck] = Field(default_factory=dict)


def load_integrity_definitions(project: Project | None = None) -> tuple[IntegrityDefinitions, Path]:
    """The project's integrity checks (the shipped ones where the project has none), and their file."""
    path = (project or current_project()).find(*INTEGRITY_FILE)
    model = load_model_file(path, IntegrityDefinitions, missing="no integrity checks: restore probes/integrity.yaml",
                            shape="enabled:, statement_timeout_ms:, max_ids:, checks:")  # fmt: skip
    return model, path


def acked_heartbeat_orders(run_dir: Path | str, run_id: str) -> list[str]:
    """The client order ids of the heartbeat orders the trading API acknowledged in this run."""
    path = Path(run_dir) / HEARTBEAT
    if not path.exists():
        return []
    df = read_samples(path, HEARTBEAT_SCHEMA).to_pandas()
    return [heartbeat_order_id(run_id, int(s)) for s in df.loc[df["outcome"].astype(object) == "acked", "seq"]]


def _connect(dsn: str, definitions: IntegrityDefinitions, retry_for: float) -> psycopg.Connection[Any]:
    deadline = time.monotonic() + retry_for
    while True:
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
            break
        except psycopg.OperationalError as err:
            if time.monotonic() >= deadline:
                raise
            log.info("integrity check: database not reachable yet (%s); retrying", err)
            time.sleep(0.5)
    try:
        for setting, value in (("default_transaction_read_only", "on"),
                               ("statement_timeout", f"{definitions.statement_timeout_ms}ms"),
                               ("lock_timeout", f"{definitions.statement_timeout_ms}ms")):  # fmt: skip
            conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    except psycopg.Error:
        conn.close()
        raise
    return conn


def _wrapped(sql_text: str) -> bytes:
    """The check's query, capped at ROW_LIMIT + 1 rows (the SQL is the project's own, trusted)."""
    body = sql_text.strip().rstrip(";").strip()
    return f"SELECT * FROM (\n{body}\n) AS integrity_violations LIMIT {ROW_LIMIT + 1}".encode()


def _violation(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    detail = ", ".join(f"{n}={v}" for n, v in zip(names[1:], row[1:], strict=True))
    return {"id": str(row[0]), "detail": detail or None}


def _run_one(conn: psycopg.Connection[Any], name: str, check: IntegrityCheck, params: dict[str, Any],
             max_ids: int) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"name": name, "description": check.description}
    started = time.monotonic()
    try:
        cur = conn.execute(_wrapped(check.sql), {p: params[p] for p in check.params} if check.params else None)
        rows = cur.fetchall()
        names = [d.name for d in cur.description or []]
    except psycopg.errors.QueryCanceled:
        out.update(violations=None, error="statement_timeout: the check took too long", ids=[])
    except psycopg.Error as err:
        out.update(violations=None, error=f"{type(err).__name__}: {str(err).strip()}", ids=[])
    else:
        out.update(violations=min(len(rows), ROW_LIMIT), truncated=len(rows) > ROW_LIMIT,
                   ids=[_violation(names, r) for r in rows[:max_ids]], error=None)  # fmt: skip
    out["elapsed_s"] = time.monotonic() - started
    if out["violations"]:
        log.warning("integrity check %s: %d violation(s)", name, out["violations"])
    return out


def run_checks(dsn: str, definitions: IntegrityDefinitions, *, acked: list[str], source: str, clock: Clock,
               retry_for: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Run every check; the samples record (see the module docstring). Never raises for the database."""
    checked_at, started = clock.now(), time.monotonic()
    record: dict[str, Any] = {"ran": False, "reason": None, "checked_at": checked_at, "source": source,
                              "acked_orders": len(acked), "checks": []}  # fmt: skip
    if not definitions.enabled:
        record["reason"] = f"the integrity check is disabled ({source}: enabled: false)"
        return record
    if not definitions.checks:
        record["reason"] = f"{source} defines no checks"
        return record
    try:
        conn = _connect(dsn, definitions, retry_for)
    except psycopg.Error as err:
        record["reason"] = f"the database was not reachable after recovery: {type(err).__name__}: {str(err).strip()}"
        return record
    params = {"acked_client_order_ids": acked}
    with conn:
        for name, check in definitions.checks.items():
            if conn.closed or conn.broken:
                record["checks"].append({"name": name, "description": check.description, "violations": None,
                                         "ids": [], "error": "the connection was lost", "elapsed_s": 0.0})  # fmt: skip
                continue
            record["checks"].append(_run_one(conn, name, check, params, definitions.max_ids))
    record.update(ran=True, elapsed_s=time.monotonic() - started)
    return record


def _write(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    path = Path(run_dir) / INTEGRITY
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return record


def record_unavailable(run_dir: Path, reason: str, clock: Clock) -> dict[str, Any]:
    """The checker could not run: say why (the integrity SLA is then INCONCLUSIVE)."""
    log.warning("integrity check not run: %s", reason)
    return _write(run_dir, {"ran": False, "reason": reason, "checked_at": clock.now(), "checks": []})


def check_integrity(run_dir: Path, dsn: str | None, *, acked: list[str], clock: Clock,
                    definitions: IntegrityDefinitions | None = None, source: str | None = None,
                    retry_for: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Run the project's (or the given) checks after recovery and write ``samples/integrity.json``."""
    if dsn is None:
        return record_unavailable(run_dir, "the target has no database DSN: integrity cannot be checked", clock)
    if definitions is None:
        definitions, path = load_integrity_definitions()
        source = source or str(path)
    record = run_checks(dsn, definitions, acked=acked, source=source or "integrity checks", clock=clock,
                        retry_for=retry_for)  # fmt: skip
    if not record["ran"]:
        log.warning("integrity check not run: %s", record["reason"])
    return _write(run_dir, record)


def analyze_integrity(run_dir: Path | str) -> dict[str, Any]:
    """measurements.json's ``integrity`` section from ``samples/integrity.json``.

    Raises FileNotFoundError when the check never ran, RuntimeError (with the reason) when it could not.
    """
    path = Path(run_dir) / INTEGRITY
    if not path.exists():
        raise FileNotFoundError(f"no {INTEGRITY}: the integrity check did not run in this drill")
    record = json.loads(path.read_text(encoding="utf-8"))
    if not record.get("ran"):
        raise RuntimeError(record.get("reason") or "the integrity check did not run")
    checks = record["checks"]
    return {
        "checked_at": record["checked_at"], "source": record["source"], "acked_orders": record["acked_orders"],
        "violations": sum(c["violations"] or 0 for c in checks),
        "failed_checks": [c["name"] for c in checks if c["violations"] is None],
        "checks": checks, "elapsed_s": record.get("elapsed_s", 0.0),
        "method": "after recovery, each check's SQL (one read-only SELECT returning the violating rows) against "
                  f"the database, statement_timeout per check; {record['acked_orders']} acknowledged heartbeat "
                  "orders checked to exist exactly once",
    }  # fmt: skip
