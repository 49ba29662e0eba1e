"""The sandbox target: etcd, Patroni-managed PostgreSQL and the trading API on loopback.

``up`` builds it from a topology file, ``Sandbox.attach`` finds a running one from another
process (all state is under the layout's directory), ``down`` removes it leaving no process,
port or lock behind. The operations the drills need (kill replicas, lose and restore a region,
fail the database over, report replicas and the primary) are methods of ``Sandbox``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import random
import secrets as secrets_mod
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil
import psycopg
from psycopg import sql

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.sut.db import migrate
from drillbit.targets.sandbox import loopback, procs, rollout
from drillbit.targets.sandbox.backups import create_bucket
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.links import LINK_SERVICES, applied_generation, link_name, write_specs
from drillbit.targets.sandbox.monitoring import alertmanager_config, monitoring_sources, prometheus_config, receiver_url
from drillbit.targets.sandbox.render import (
    SUPERUSER,
    Ports,
    Secrets,
    app_dsn,
    backup_store,
    circus_ini,
    link_specs,
    patroni_config,
    pgpass,
)
from drillbit.targets.sandbox.supervisor import Supervisor
from drillbit.targets.sandbox.topology import Topology, default_topology, load_topology

__all__ = ["FailoverMode", "Sandbox", "SandboxState", "down", "ready_pid", "up"]

log = logging.getLogger(__name__)

FailoverMode = Literal["kill-node", "kill-postgres", "switchover"]
Report = Callable[[str], None]

STARTUP_TIMEOUT = 60.0
HTTP_TIMEOUT = 1.0
STANDBY_ROLES = ("replica", "sync_standby", "quorum_standby")  # Patroni's roles of a streaming standby
READY_TIMEOUT_S = 1.0  # a replica's readiness answer (Kubernetes' default timeoutSeconds)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SandboxState:
    """What ``.drill/sandbox/state.json`` holds: everything but secrets."""

    id: str
    created_at: str
    topology_file: str
    regions: list[str]
    ports: dict[str, Any]
    front_door_url: str
    dsn: str
    supervisor_pid: int
    status: str  # "starting" | "up"

    @property
    def port_map(self) -> Ports:
        return Ports(**self.ports)

    def save(self, layout: Layout) -> None:
        tmp = layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(layout.state_file)

    @classmethod
    def load(cls, layout: Layout) -> SandboxState | None:
        try:
            data = json.loads(layout.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("unreadable sandbox state %s (%s): treating it as stale", layout.state_file, err)
            return None
        try:
            return cls(**data)
        except TypeError:
            log.warning("sandbox state %s has an unknown shape: treating it as stale", layout.state_file)
            return None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _wait(what: str, check: Callable[[], bool], timeout: float, hint: str, interval: float = 0.1) -> float:
    """Poll ``check`` until true; return seconds waited or raise EnvironmentFailure."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise EnvironmentFailure(f"{what} did not happen within {timeout:.0f} s: {hint}")
        time.sleep(interval)


def _http_ok(url: str, *, uds: Path | None = None, timeout: float = HTTP_TIMEOUT) -> bool:
    try:
        with loopback.client(uds=uds, timeout=timeout) as client:
            return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def ready_pid(sock: Path, path: str = "/readyz", timeout: float = READY_TIMEOUT_S) -> str | None:
    """The pid of the replica on ``sock`` (its identity) when it is ready, or None. Ready is what a
    Kubernetes readiness probe means: its path (the manifests', ``/readyz`` by default: not draining,
    a pooled connection to a writable primary) answers 200. Alive is not ready: a replica answers
    /healthz from the moment it starts, before its pools are open, and through a database outage in
    which it can serve nothing (a manifest probing /healthz for readiness says so in every drill)."""
    try:
        with loopback.client(uds=sock, timeout=timeout) as client:
            answer = client.get(f"http://replica{path}")
            return str(answer.json()["pid"]) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _all_dead(pids: list[int], timeout: float) -> bool:
    """True once every pid has exited (or is a zombie awaiting its reaper) within ``timeout``."""

    def dead(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + timeout
    while not all(dead(p) for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EnvironmentFailure(f"another drill holds {layout.lock_file}: wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Sandbox:
    """A running sandbox, attached through its state directory."""

    def __init__(self, layout: Layout, state: SandboxState, topology: Topology) -> None:
        self.layout = layout
        self.state = state
        self.topology = topology
        self.supervisor = Supervisor(layout.run)

    # -- discovery -------------------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir: Path | str | None = None) -> Sandbox:
        layout = Layout.at(state_dir)
        state = SandboxState.load(layout)
        if state is None or state.status != "up":
            raise EnvironmentFailure(f"no sandbox is up under {layout.state_dir}: run `drill env up --env sandbox`")
        return cls(layout, state, _resolved_topology(layout, state))

    @property
    def front_door_url(self) -> str:
        return self.state.front_door_url

    @property
    def dsn(self) -> str:
        """The application's multi-host DSN (password in a pgpass file, not in the string)."""
        return self.state.dsn

    @property
    def regions(self) -> list[str]:
        return list(self.state.regions)

    def _region(self, region: str) -> str:
        if region not in self.state.regions:
            raise ConfigError("region", f"unknown region {region!r}: use one of {', '.join(self.regions)}")
        return region

    def _restapi(self, region: str) -> str:
        return f"http://{procs.LOOPBACK}:{self.state.port_map.restapi[region]}"

    def supervisor_alive(self) -> bool:
        return psutil.pid_exists(self.state.supervisor_pid) and bool(procs.tagged(self.state.id, "supervisor"))

    # -- observation -----------------------------------------------------------------------
    def cluster(self) -> list[dict[str, Any]]:
        """Patroni's view of the database nodes (name, role, state, lag), from any live node."""
        for region in self.regions:
            try:
                with loopback.client(timeout=HTTP_TIMEOUT) as client:
                    r = client.get(f"{self._restapi(region)}/cluster")
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                members: list[dict[str, Any]] = r.json().get("members", [])
                return members
        return []

    def primary(self) -> str | None:
        """The region whose database node is the running primary, or None during an outage."""
        for region in self.regions:
            if _http_ok(f"{self._restapi(region)}/primary"):
                return region
        return None

    def replicas(self) -> dict[str, dict[str, int]]:
        """Desired and ready API replicas per region (ready: /readyz answers 200 on its own socket)."""
        return {region: {"desired": c["desired"], "ready": c["ready"]} for region, c in self.ready_replicas().items()}

    def ready_replicas(self) -> dict[str, dict[str, Any]]:
        """``replicas()`` and which replicas were ready (``ready_ids``: their pids, from /readyz)."""
        out: dict[str, dict[str, Any]] = {}
        for region in self.regions:
            name = f"api-{region}"
            desired = 0 if self.supervisor.status(name) != "active" else self.supervisor.numprocesses(name)
            # circus reuses the lowest free worker id, so after kills and scale-ins the live ids are not
            # 1..desired: probe every socket of the region; a dead replica's socket refuses connections
            sockets = sorted(self.layout.run.glob(f"api-{region}-*.sock"))
            with ThreadPoolExecutor(max_workers=max(1, len(sockets))) as pool:  # one slow replica delays no other
                probe = functools.partial(ready_pid, path=self.topology.api.readiness_path)
                ids = [pid for pid in pool.map(probe, sockets) if pid is not None]
            out[region] = {"desired": desired, "ready": len(ids), "ready_ids": sorted(ids)}
        return out

    def status(self) -> dict[str, Any]:
        return {
            "id": self.state.id,
            "created_at": self.state.created_at,
            "supervisor": "running" if self.supervisor_alive() else "dead",
            "front_door": self.front_door_url,
            "front_door_ready": _http_ok(f"{self.front_door_url}/readyz"),
            "dsn": self.dsn,
            "primary": self.primary(),
            "database_nodes": [
                {k: m.get(k) for k in ("name", "role", "state", "lag", "timeline")} for m in self.cluster()
            ],
            "replicas": self.replicas(),
            "monitoring": self.monitoring_urls(),
        }

    def monitoring_urls(self) -> dict[str, str] | None:
        """Prometheus's and Alertmanager's URLs and the drill's alert receiver address; None without monitoring."""
        if not self.topology.monitoring.enabled:
            return None
        ports = self.state.port_map
        if not ports.prometheus:
            return None
        base = f"http://{procs.LOOPBACK}"
        return {"prometheus": f"{base}:{ports.prometheus}", "alertmanager": f"{base}:{ports.alertmanager}",
                "alert_receiver": f"{procs.LOOPBACK}:{ports.alert_receiver}"}  # fmt: skip

    # -- faults ----------------------------------------------------------------------------
    def kill_replicas(
        self,
        count: int | None = None,
        *,
        percent: float | None = None,
        region: str | None = None,
        rng: random.Random | None = None,
    ) -> dict[str, Any]:
        """SIGKILL API replicas (chosen at random); the supervisor restarts them."""
        regions = [self._region(region)] if region else self.regions
        pool = [(r, pid) for r in regions for pid in self.supervisor.pids(f"api-{r}")]
        if percent is not None:
            if not 0 < percent <= 100:
                raise ConfigError("percent", f"must be in (0, 100], got {percent}")
            count = max(1, round(len(pool) * percent / 100))
        if count is None or count < 1:
            raise ConfigError("count", "give a count >= 1 or a percent")
        if count > len(pool):
            raise ConfigError("count", f"only {len(pool)} replicas are running, cannot kill {count}")
        victims = (rng or random.Random()).sample(pool, count)
        for _r, pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed_at = _now()
        landed = _all_dead([pid for _r, pid in victims], timeout=5.0)
        return {"killed_at": killed_at, "landed": landed, "killed": [{"region": r, "pid": pid} for r, pid in victims]}

    def kill_db_node(self, region: str) -> list[int]:
        """SIGKILL a region's database node (Patroni and postgres); it stays down until started."""
        return procs.kill(procs.tagged(self.state.id, f"{self._region(region)}/db"))

    def kill_region(self, region: str) -> dict[str, Any]:
        """Lose a region at once: its database node (Patroni and postgres) and its API replicas."""
        self._region(region)
        killed = procs.kill(procs.tagged(self.state.id, prefix=f"{region}/"))  # all at once, SIGKILL
        killed_at = _now()
        # then keep it down: the supervisor must not bring the region's processes back
        self.supervisor.stop(f"api-{region}")
        self.supervisor.stop(f"db-{region}")
        killed += procs.kill(procs.tagged(self.state.id, prefix=f"{region}/"))
        return {"region": region, "killed_at": killed_at, "pids": sorted(set(killed))}

    def restore_region(self, region: str, *, wait: bool = True, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        """Bring a lost region back: its database node rejoins (pg_rewind), its replicas start."""
        self._region(region)
        started_at = _now()
        self.start_db_node(region)
        self.supervisor.start(f"api-{region}")
        if wait:
            self._wait_node_running(region, timeout)
            self._wait_replicas(region, timeout)
        return {"region": region, "restored_at": started_at}

    def start_db_node(self, region: str) -> None:
        """Start a region's database node (it rejoins the cluster: pg_rewind, streaming)."""
        # A node killed under a live watcher leaves it "active" with no process: reset it first.
        self.supervisor.stop(f"db-{region}")
        self.supervisor.start(f"db-{region}")

    def failover_db(
        self, mode: FailoverMode = "kill-node", *, wait: bool = True, timeout: float = STARTUP_TIMEOUT
    ) -> dict[str, Any]:
        """Fail the database over.

        kill-node: SIGKILL the primary's Patroni and postgres (a lost host; stays down until
        ``restore_region``); kill-postgres: SIGKILL only postgres, Patroni fails over and
        rejoins the old primary; switchover: a planned Patroni switchover.
        """
        old = self.primary()
        if old is None:
            raise EnvironmentFailure("no primary database node right now: nothing to fail over")
        others = [r for r in self.regions if r != old]
        at = _now()
        if mode == "kill-node":
            pids = self.kill_db_node(old)
        elif mode == "kill-postgres":
            pids = procs.kill([self._postmaster(old)])
        elif mode == "switchover":
            pids = []
            self._switchover(old, others[0])
        else:
            raise ConfigError("mode", f"unknown failover mode {mode!r}: use kill-node, kill-postgres or switchover")
        new = None
        if wait:

            def promoted() -> bool:
                nonlocal new
                new = self.primary()
                return new is not None and new != old

            _wait("promotion of a new primary", promoted, timeout, f"see {self.layout.logs}")
        return {"mode": mode, "old_primary": old, "new_primary": new, "injected_at": at, "pids": pids}

    def _postmaster(self, region: str) -> psutil.Process:
        pidfile = self.layout.pg_data(region) / "postmaster.pid"
        try:
            return psutil.Process(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            raise EnvironmentFailure(f"postgres of {region} is not running ({pidfile})") from None

    def _switchover(self, leader: str, candidate: str) -> None:
        secrets = json.loads(self.layout.secrets_file.read_text())
        with loopback.client(timeout=30.0) as client:
            r = client.post(
                f"{self._restapi(leader)}/switchover",
                json={"leader": leader, "candidate": candidate},
                auth=("patroni", secrets["restapi"]),
            )
        if r.status_code != 200:
            raise EnvironmentFailure(f"Patroni refused the switchover: {r.status_code} {r.text.strip()}")

    # -- waits -----------------------------------------------------------------------------
    def node_healthy(self, region: str) -> bool:
        """The node runs: as leader, or as a replica streaming from the primary. Asked of the node itself
        too: the cluster's view (the DCS) keeps a dead member as it last was until its key expires (up to
        the TTL), so a region lost seconds ago would still look healthy from the other node."""
        if not _http_ok(f"{self._restapi(region)}/health"):  # Patroni answers 200 while its postgres runs
            return False
        for m in self.cluster():
            if m.get("name") == region:  # with synchronous_mode Patroni names the synchronous replica sync_standby
                role, state = m.get("role"), m.get("state")
                return (role, state) == ("leader", "running") or (role in STANDBY_ROLES and state == "streaming")
        return False

    def _wait_node_running(self, region: str, timeout: float) -> float:
        return _wait(
            f"database node {region} streaming or leading",
            lambda: self.node_healthy(region),
            timeout,
            f"see {self.layout.logs / f'db-{region}.log'}",
        )

    def _wait_replicas(self, region: str, timeout: float) -> float:
        def ready() -> bool:
            counts = self.replicas()[region]
            return counts["ready"] == counts["desired"]

        return _wait(f"API replicas of {region} ready", ready, timeout, f"see {self.layout.logs / f'api-{region}.log'}")

    # -- deployments -----------------------------------------------------------------------
    def roll_out(
        self, version: str, *, max_unavailable: int | None = None, max_surge: int | None = None,
        timeout: float = rollout.DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:  # fmt: skip
        """Rolling update of every API replica to ``version``, without a failed request (see rollout);
        the budget is the topology's (the manifests' strategy) unless given."""
        budget = self.topology.rollout
        return rollout.roll_out(
            self, version, timeout=timeout,
            max_unavailable=budget.max_unavailable if max_unavailable is None else max_unavailable,
            max_surge=budget.max_surge if max_surge is None else max_surge,
        )  # fmt: skip

    def versions(self) -> dict[str, list[str]]:
        """Region -> the version each live API replica reports on its own socket."""
        return rollout.versions(self)


# -- lifecycle -------------------------------------------------------------------------------


def _resolve_ports(topo: Topology, source: str) -> Ports:
    fields = ["front_door.port", "etcd.client_port", "etcd.peer_port"]
    wanted = [topo.front_door.port, topo.etcd.client_port, topo.etcd.peer_port]
    regions = [r.name for r in topo.regions]
    wanted += [0] * (2 * len(regions))
    monitoring = 4 if topo.monitoring.enabled else 0  # prometheus, alertmanager, exporter, the alert receiver
    wanted += [0] * monitoring
    link_names = [link_name(s, r) for r in regions for s in LINK_SERVICES] if topo.links.enabled else []
    wanted += [0] * len(link_names)
    wanted += [0] * topo.backups.enabled  # the backups' S3 endpoint
    try:
        got = procs.free_ports(wanted)
    except procs.PortInUse as err:
        field = fields[wanted.index(err.port)]
        raise ConfigError(
            source, f"{field}: port {err.port} is already in use on 127.0.0.1: pick another or set 0 (automatic)"
        ) from None
    it = iter(got[3:])
    postgres = {r: next(it) for r in regions}
    restapi = {r: next(it) for r in regions}
    names = ("prometheus", "alertmanager", "exporter", "alert_receiver")
    extra = dict(zip(names, [next(it) for _ in range(monitoring)], strict=False))
    links = {name: next(it) for name in link_names}
    s3 = next(it) if topo.backups.enabled else 0
    return Ports(front_door=got[0], etcd_client=got[1], etcd_peer=got[2], postgres=postgres, restapi=restapi,
                 links=links, s3=s3, **extra)  # fmt: skip


def _teardown(layout: Layout, sandbox_id: str | None, report: Report) -> dict[str, Any]:
    """Stop everything of one sandbox and remove its state (the lock must be held)."""
    if sandbox_id and procs.tagged(sandbox_id, "supervisor"):
        # an orderly stop first (replicas drain); whatever is left is SIGKILLed below
        with contextlib.suppress(EnvironmentFailure):
            Supervisor(layout.run, timeout=10.0).quit()
    killed: list[int] = []
    if sandbox_id:
        left = procs.tagged(sandbox_id)
        killed = procs.kill(left)
        alive = procs.wait_gone(left, timeout=10.0)
        if alive:
            raise EnvironmentFailure("processes survived SIGKILL: " + ", ".join(str(p.pid) for p in alive))
    state = SandboxState.load(layout)
    busy = procs.wait_ports_free(state.port_map.all(), timeout=10.0) if state else []
    if busy:
        raise EnvironmentFailure(f"ports still held after down: {busy}")
    kept = layout.state_dir / "last-sandbox-logs"
    if layout.logs.exists():
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(str(layout.logs), kept)
    shutil.rmtree(layout.run, ignore_errors=True)
    shutil.rmtree(layout.root, ignore_errors=True)
    return {"killed_pids": len(killed), "logs": str(kept)}


def _start_supervisor(layout: Layout, sandbox_id: str) -> int:
    env = {**os.environ, procs.ENV_SANDBOX: sandbox_id, procs.ENV_UNIT: "supervisor"}
    with open(layout.logs / "circus.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "circus.circusd", str(layout.circus_ini), "--log-level", "warning"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=Path.cwd(),
        )
    sup = Supervisor(layout.run, timeout=2.0)

    def answering() -> bool:
        if proc.poll() is not None:
            raise EnvironmentFailure(f"the supervisor exited at start: see {layout.logs / 'circus.log'}")
        try:
            sup.call("list")
        except EnvironmentFailure:
            return False
        return True

    _wait("the supervisor answering", answering, 20.0, f"see {layout.logs / 'circus.log'}", 0.05)
    return proc.pid


def _create_app_database(topo: Topology, ports: Ports, region: str, secrets: Secrets) -> None:
    """Create the application's role and database on the primary, then its schema."""

    admin = psycopg.conninfo.make_conninfo(
        host=procs.LOOPBACK,
        port=ports.postgres[region],
        dbname="postgres",
        user=SUPERUSER,
        password=secrets.superuser,
        connect_timeout=5,
    )
    db, user = topo.database.name, topo.database.user
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(secrets.app))
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(user)))
    migrate(
        psycopg.conninfo.make_conninfo(
            host=procs.LOOPBACK,
            port=ports.postgres[region],
            dbname=db,
            user=user,
            password=secrets.app,
            connect_timeout=5,
        )
    )


def up(
    topology_file: Path | str | None = None, state_dir: Path | str | None = None, report: Report = log.info,
    *, monitoring: bool | None = None, backups: bool | None = None,
) -> Sandbox:
    """Start the sandbox (or return the one already up); clean a stale one first. ``monitoring``:
    with (True) or without (False) Prometheus and Alertmanager, whatever the topology says;
    ``backups``: with or without WAL archiving and base backups to an S3 bucket, likewise."""
    layout = Layout.at(state_dir)

    topo_path = Path(topology_file).resolve() if topology_file else default_topology()
    topo = load_topology(topo_path)
    if monitoring is not None:
        topo = topo.model_copy(update={"monitoring": topo.monitoring.model_copy(update={"enabled": monitoring})})
    if backups is not None:
        topo = topo.model_copy(update={"backups": topo.backups.model_copy(update={"enabled": backups})})
    with _locked(layout):
        old = SandboxState.load(layout)
        if old is not None:
            sb = Sandbox(layout, old, topo)
            if old.status == "up" and sb.supervisor_alive() and _http_ok(f"{old.front_door_url}/healthz"):
                running = _resolved_topology(layout, old)
                if monitoring and not running.monitoring.enabled:
                    raise EnvironmentFailure(f"sandbox {old.id} is up without monitoring: `drill env down`, then "
                                             "`drill env up --with-monitoring`")  # fmt: skip
                if backups and not running.backups.enabled:
                    raise EnvironmentFailure(f"sandbox {old.id} is up without backups: `drill env down`, then "
                                             "`drill env up --with-backups`")  # fmt: skip
                report(f"sandbox {old.id} is already up: {old.front_door_url}")
                return Sandbox(layout, old, running)
            report(f"found a stale sandbox {old.id} (started {old.created_at}, not healthy): cleaning it up first")
            _teardown(layout, old.id, report)
        elif layout.root.exists():
            report(f"found leftover sandbox files in {layout.root}: removing them first")
            _teardown(layout, None, report)
        ports = _resolve_ports(topo, str(topo_path))
        sandbox_id = secrets_mod.token_hex(6)
        try:
            return _bring_up(topo, topo_path, ports, layout, sandbox_id, report)
        except BaseException:
            report("start-up failed: stopping what was started")
            with contextlib.suppress(EnvironmentFailure):
                _teardown(layout, sandbox_id, report)
            raise


def _resolved_topology(layout: Layout, state: SandboxState) -> Topology:
    """The topology the sandbox was brought up with, as resolved then (its sizes from the manifests
    as they were): what runs, even if the files changed since, and no kustomize run per attach."""
    try:
        return Topology.model_validate_json(layout.resolved_topology.read_text())
    except (OSError, ValueError):  # a sandbox from before it was kept
        return load_topology(state.topology_file)


def _bring_up(
    topo: Topology, topo_path: Path, ports: Ports, layout: Layout, sandbox_id: str, report: Report
) -> Sandbox:
    t0 = time.monotonic()
    layout.ensure()
    secrets = Secrets(*(secrets_mod.token_urlsafe(18) for _ in range(4)))
    _write_private(layout.secrets_file, json.dumps(asdict(secrets)))
    _write_private(layout.pgpass, pgpass(topo, secrets))
    layout.resolved_topology.write_text(topo.model_dump_json(indent=2))
    dsn = app_dsn(topo, ports, layout)
    regions = [r.name for r in topo.regions]
    state = SandboxState(
        id=sandbox_id,
        created_at=_now(),
        topology_file=str(topo_path),
        regions=regions,
        ports=asdict(ports),
        front_door_url=f"http://{procs.LOOPBACK}:{ports.front_door}",
        dsn=dsn,
        supervisor_pid=0,
        status="starting",
    )
    state.save(layout)  # first, so a crash from here on leaves a sandbox id to clean up
    for region in regions:
        _write_private(
            layout.patroni_config(region),
            patroni_config(topo, region, ports, secrets, layout, f"drillbit-{sandbox_id}"),
        )
    if topo.monitoring.enabled:
        _write_monitoring(topo, topo_path, ports, layout)
    write_specs(layout.root, link_specs(topo, ports))  # [] without links: the proxy is not started then
    _write_private(layout.circus_ini, circus_ini(topo, ports, layout, sandbox_id, dsn))
    pid = _start_supervisor(layout, sandbox_id)
    state = SandboxState(**{**asdict(state), "supervisor_pid": pid})
    state.save(layout)
    sb = Sandbox(layout, state, topo)

    etcd = f"http://{procs.LOOPBACK}:{ports.etcd_client}/health"
    _wait("etcd healthy", lambda: _http_ok(etcd), 20.0, f"see {layout.logs / 'etcd.log'}")
    if ports.links:
        _wait("the link proxy serving", lambda: applied_generation(layout.root) >= 0, 20.0,
              f"see {layout.logs / 'links.log'}")  # fmt: skip
    if (store := backup_store(ports)) is not None:
        _wait("the backups' S3 endpoint answering", lambda: _http_ok(f"{store.endpoint}/moto-api/"), 20.0,
              f"see {layout.logs / 's3.log'}")  # fmt: skip
        create_bucket(store)
    first, rest = regions[0], regions[1:]
    sb.supervisor.start(f"db-{first}")
    _wait(
        f"{first} bootstrapped as primary",
        lambda: _http_ok(f"{sb._restapi(first)}/primary"),
        STARTUP_TIMEOUT,
        f"see {layout.logs / f'db-{first}.log'}",
    )
    for region in rest:
        sb.supervisor.start(f"db-{region}")
    _create_app_database(topo, ports, first, secrets)
    for region in regions:
        sb.supervisor.start(f"api-{region}")
    for region in rest:
        url = f"{sb._restapi(region)}/replica"
        _wait(
            f"{region} streaming from the primary",
            functools.partial(_http_ok, url),
            STARTUP_TIMEOUT,
            f"see {layout.logs / f'db-{region}.log'}",
        )
    for region in regions:
        sb._wait_replicas(region, STARTUP_TIMEOUT)
    _wait("the front door ready", lambda: _http_ok(f"{state.front_door_url}/readyz"), 20.0, f"see {layout.logs}")
    if topo.autoscaling.enabled:
        sb.supervisor.start("autoscaler")
    state = SandboxState(**{**asdict(state), "status": "up"})
    state.save(layout)
    took = ""
    if topo.monitoring.enabled:  # after "up": the exporter attaches to the sandbox
        took = f" (monitoring {_start_monitoring(sb):.1f} s of it)"
    report(
        f"sandbox {sandbox_id} up in {time.monotonic() - t0:.1f} s{took}: front door {state.front_door_url}, "
        f"primary {sb.primary()}"
    )
    return Sandbox(layout, state, topo)


def _write_monitoring(topo: Topology, topo_path: Path, ports: Ports, layout: Layout) -> None:
    """prometheus.yml, alertmanager.yml and a copy of the rule files they use, under the sandbox root."""
    rules, am = monitoring_sources(topo, topo_path)
    kept = layout.root / "rules"
    kept.mkdir(exist_ok=True)
    copies = []
    for path in rules:
        copy = kept / path.name
        shutil.copyfile(path, copy)
        copies.append(copy)
    layout.root.joinpath("prometheus.yml").write_text(prometheus_config(
        topo, exporter=ports.exporter, alertmanager=ports.alertmanager, restapi=ports.restapi, rule_files=copies))
    layout.root.joinpath("alertmanager.yml").write_text(alertmanager_config(am, receiver_url(ports.alert_receiver)))


def _start_monitoring(sb: Sandbox) -> float:
    """Start the exporter, Alertmanager and Prometheus; wait until each answers. Returns seconds taken."""
    t0 = time.monotonic()
    ports, logs = sb.state.port_map, sb.layout.logs
    for name in ("exporter", "alertmanager", "prometheus"):
        sb.supervisor.start(name)
    base = f"http://{procs.LOOPBACK}"
    _wait("the sandbox exporter answering", lambda: _http_ok(f"{base}:{ports.exporter}/probe"), 20.0,
          f"see {logs / 'exporter.log'}")  # fmt: skip
    _wait("Alertmanager ready", lambda: _http_ok(f"{base}:{ports.alertmanager}/-/ready"), 20.0,
          f"see {logs / 'alertmanager.log'}")  # fmt: skip
    _wait("Prometheus ready", lambda: _http_ok(f"{base}:{ports.prometheus}/-/ready"), 30.0,
          f"see {logs / 'prometheus.log'}")  # fmt: skip
    return time.monotonic() - t0


def down(state_dir: Path | str | None = None, report: Report = log.info) -> dict[str, Any]:
    """Stop the sandbox: no process, no port, no lock left behind."""
    layout = Layout.at(state_dir)
    with _locked(layout):
        state = SandboxState.load(layout)
        if state is None and not layout.root.exists():
            report("no sandbox to stop")
            result: dict[str, Any] = {"killed_pids": 0}
        else:
            result = _teardown(layout, state.id if state else None, report)
            report(f"sandbox {state.id if state else '(unknown)'} is down; logs kept in {result['logs']}")
    layout.lock_file.unlink(missing_ok=True)
    return result
