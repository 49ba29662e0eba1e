"""The trader and market-data locustfiles against the real trading API (a replica on a real PostgreSQL)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.rundir import request_parts
from drillbit.load.runner import run_load

LOCUSTFILES = Path(__file__).resolve().parents[2] / "loadtests"  # plain `locust -f`, as a user runs it

pytestmark = pytest.mark.slow

TEMPLATES = {
    "POST /orders",
    "DELETE /orders/{id}",
    "GET /orders/{id}",
    "GET /book/{symbol}",
    "GET /marketdata/{symbol}",
}


@pytest.fixture
def api(trading_dsn: str, replica_factory: Any) -> str:
    return str(replica_factory(trading_dsn).url)


def _open(path: Path, rate: float, duration: float) -> Path:
    path.write_text(f"name: {path.stem}\nmodel: open\nstages:\n  - {{duration: {duration}, rate: {rate}}}\n")
    return path


def test_the_trader_places_cancels_and_queries_under_the_open_model(api: str, trading_dsn: str, tmp_path: Path) -> None:
    result = run_load("trader", _open(tmp_path / "t.yaml", 40, 5), api, tmp_path / "run", timeout=60)
    assert not result.saturated, result.reasons
    assert result.due == result.recorded == 200
    t = pa.concat_tables(pq.read_table(f) for f in request_parts(tmp_path / "run")[0]).to_pandas()
    names = t["name"].astype(str).value_counts().to_dict()
    assert set(names) <= TEMPLATES and {"POST /orders", "DELETE /orders/{id}", "GET /orders/{id}"} <= set(names)
    assert names["POST /orders"] >= 0.45 * len(t)  # the mix: 6 of 10 places (plus fallbacks)
    assert t["error"].isna().all(), t[t["error"].notna()].head()
    assert set(t["status"]) <= {200, 201, 409}
    with psycopg.connect(trading_dsn) as conn:
        orders, distinct = conn.execute("SELECT count(*), count(DISTINCT client_order_id) FROM orders").fetchone()
        symbols = {r[0] for r in conn.execute("SELECT DISTINCT symbol FROM orders")}
    assert orders == distinct == int((t["status"] == 201).sum())  # one new order per 201, unique client ids
    assert len(symbols) >= 3


def test_the_market_data_reader_reads_books_and_quotes(api: str, tmp_path: Path) -> None:
    result = run_load("marketdata", _open(tmp_path / "m.yaml", 30, 3), api, tmp_path / "run", timeout=60)
    assert not result.saturated and result.recorded == 90
    t = pa.concat_tables(pq.read_table(f) for f in request_parts(tmp_path / "run")[0]).to_pandas()
    assert set(t["name"].astype(str)) == {"GET /book/{symbol}", "GET /marketdata/{symbol}"}
    assert t["error"].isna().all() and set(t["status"]) == {200}


def test_plain_locust_runs_the_trader_closed_model_without_drillbit(api: str, tmp_path: Path) -> None:
    profile = tmp_path / "users.yaml"
    profile.write_text("name: few\nmodel: closed\nstages:\n  - {duration: 3, users: 3, spawn_rate: 3}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRILL_")} | {"DRILL_PROFILE": str(profile)}
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "trader.py"), "--headless", "--host", api,
         "--csv", str(tmp_path / "stats"), "--only-summary"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "stats_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert "POST /orders" in rows and set(rows) - {"Aggregated"} <= TEMPLATES
    assert int(rows["Aggregated"]["Failure Count"]) == 0 and int(rows["Aggregated"]["Request Count"]) > 20
    assert not (tmp_path / "requests").exists()  # nothing recorded without a run directory
