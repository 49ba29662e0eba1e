"""Render the sandbox's configuration files: Patroni per node, circus for the supervisor, pgpass.

Pure functions from (topology, ports, secrets, layout) to text, so they are unit-testable.
"""

from __future__ import annotations

import configparser
import io
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drillbit.targets.sandbox.backups import CREDENTIALS, Store, archive_parameters, s3_command
from drillbit.targets.sandbox.binaries import etcd_binary, pg_bin_dir
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.links import LINK_SERVICES, LinkSpec, link_name
from drillbit.targets.sandbox.monitoring import alertmanager_cmd, prometheus_cmd
from drillbit.targets.sandbox.procs import ENV_SANDBOX, ENV_UNIT, LOOPBACK
from drillbit.targets.sandbox.topology import Topology
from drillbit.targets.sandbox.unpriv import db_command_prefix

__all__ = [
    "API_DRAIN_TIMEOUT_S",
    "Ports",
    "Secrets",
    "api_version_file",
    "app_dsn",
    "backup_store",
    "circus_ini",
    "link_specs",
    "patroni_config",
    "pgpass",
]

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
RESTAPI_USER = "patroni"
#: an API replica told to stop (SIGTERM) drains for at most this long (see drillbit.sut.serve); the
#: supervisor waits a little longer before it sends SIGKILL
API_DRAIN_TIMEOUT_S = 10.0
API_DRAIN_IDLE_GRACE_S = 1.0


@dataclass(frozen=True)
class Ports:
    front_door: int
    etcd_client: int
    etcd_peer: int
    postgres: dict[str, int]
    restapi: dict[str, int]
    # monitoring (0: off): Prometheus, Alertmanager, the sandbox exporter, and the port a drill's
    # alert receiver listens on while it runs (Alertmanager's webhooks point there)
    prometheus: int = 0
    alertmanager: int = 0
    exporter: int = 0
    alert_receiver: int = 0
    # the link proxy's ports (links.enabled), by link name (``postgres@region-a``, see links.py); {}: off
    links: dict[str, int] = field(default_factory=dict)
    s3: int = 0  # the backups' object store (backups.enabled; 0: off)

    def all(self) -> list[int]:
        """The ports the sandbox's own processes hold (not the receiver's: a drill holds it)."""
        monitoring = [p for p in (self.prometheus, self.alertmanager, self.exporter) if p]
        return [
            self.front_door,
            self.etcd_client,
            self.etcd_peer,
            *self.postgres.values(),
            *self.restapi.values(),
            *monitoring,
            *self.links.values(),
            *([self.s3] if self.s3 else []),
        ]

    def link(self, service: str, region: str, direct: int) -> int:
        """The port another region uses for ``service`` of ``region`` (the link's, or ``direct`` without links)."""
        return self.links.get(link_name(service, region), direct)


@dataclass(frozen=True)
class Secrets:
    superuser: str
    replication: str
    app: str
    restapi: str


def api_version_file(layout: Layout) -> Path:
    """The deploy record: the API version every replica reads when it starts (``Sandbox.roll_out``)."""
    return layout.root / "api-version"


def app_dsn(
    topo: Topology, ports: Ports, layout: Layout, *, connect_timeout: int = 2, region: str | None = None
) -> str:
    """The application's libpq multi-host DSN; the password lives in the pgpass file, not here. For
    ``region``'s replicas with links: its own database directly, the other's through its link."""
    regions = [r.name for r in topo.regions]
    hosts = ",".join(LOOPBACK for _ in regions)
    port_list = ",".join(
        str(ports.postgres[r] if region in (None, r) else ports.link("postgres", r, ports.postgres[r])) for r in regions
    )
    return (
        f"host={hosts} port={port_list} dbname={topo.database.name} user={topo.database.user} "
        f"target_session_attrs=read-write connect_timeout={connect_timeout} "
        f"passfile={layout.pgpass}"
    )


def link_specs(topo: Topology, ports: Ports) -> list[LinkSpec]:
    """The link proxy's links (links.enabled; [] without): see drillbit.targets.sandbox.links."""
    upstream = {"postgres": ports.postgres, "replication": ports.postgres, "restapi": ports.restapi}
    return [
        LinkSpec(name, service, r.name, ports.links[name],
                 ports.etcd_client if service == "etcd" else upstream[service][r.name])
        for r in topo.regions for service in LINK_SERVICES
        if (name := link_name(service, r.name)) in ports.links
    ]  # fmt: skip


def backup_store(ports: Ports) -> Store | None:
    """Where the sandbox's backups go (None: backups off)."""
    return Store(f"http://{LOOPBACK}:{ports.s3}") if ports.s3 else None


def pgpass(topo: Topology, secrets: Secrets) -> str:
    return f"{LOOPBACK}:*:*:{topo.database.user}:{secrets.app}\n"


def patroni_config(topo: Topology, region: str, ports: Ports, secrets: Secrets, layout: Layout, scope: str) -> str:
    p = topo.patroni
    pg_port = ports.postgres[region]
    api_port = ports.restapi[region]
    etcd3: dict[str, Any] = {"hosts": f"{LOOPBACK}:{ports.link('etcd', region, ports.etcd_client)}"}
    if ports.links:  # through the region's link to the witness; without use_proxies Patroni asks etcd for its members
        etcd3["use_proxies"] = True  # and would then reach it directly, around the link
    cfg: dict[str, Any] = {
        "scope": scope,
        "namespace": "/drillbit/",
        "name": region,
        "restapi": {
            "listen": f"{LOOPBACK}:{api_port}",
            "connect_address": f"{LOOPBACK}:{ports.link('restapi', region, api_port)}",  # what the other node asks
            "authentication": {"username": RESTAPI_USER, "password": secrets.restapi},
        },
        "etcd3": etcd3,
        "log": {"level": "INFO"},
        "bootstrap": {
            "dcs": {
                "ttl": p.ttl,
                "loop_wait": p.loop_wait,
                "retry_timeout": p.retry_timeout,
                "primary_start_timeout": p.primary_start_timeout,
                "maximum_lag_on_failover": p.maximum_lag_on_failover,
                "synchronous_mode": topo.database.synchronous_mode,
                "postgresql": {
                    "use_pg_rewind": True,
                    # a rewind that cannot run (the WAL it needs is gone) re-clones the node rather than leave
                    # it down: the heal must bring a demoted primary back whatever happened to its WAL
                    "remove_data_directory_on_rewind_failure": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "max_connections": 100,
                        "wal_keep_size": "128MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
        },
        "postgresql": {
            "listen": f"{LOOPBACK}:{pg_port}",
            "connect_address": f"{LOOPBACK}:{ports.link('replication', region, pg_port)}",  # the other node streams
            "data_dir": str(layout.pg_data(region)),
            "bin_dir": str(pg_bin_dir()),
            "pgpass": str(layout.root / f"pgpass-patroni-{region}"),
            # a spread checkpoint would make a new replica wait minutes for its base backup
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": secrets.superuser},
                "replication": {"username": REPLICATION_USER, "password": secrets.replication},
            },
            "parameters": {
                "unix_socket_directories": str(layout.run),
                "shared_buffers": topo.database.shared_buffers,
                "password_encryption": "scram-sha-256",
                **(archive_parameters(store, topo.backups.archive_timeout_s) if (store := backup_store(ports)) else {}),
            },
            "pg_hba": [
                "local all all trust",
                f"host replication {REPLICATION_USER} {LOOPBACK}/32 scram-sha-256",
                f"host all all {LOOPBACK}/32 scram-sha-256",
            ],
        },
        "tags": {"region": region},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def _etcd_cmd(ports: Ports, layout: Layout) -> str:
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return shlex.join(
        [
            str(etcd_binary()),
            "--name=witness",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=witness={peer}",
            "--log-level=warn",
            "--unsafe-no-fsync",  # a sandbox witness: durability across host crashes is moot
        ]
    )


def _stream(section: dict[str, str], log: Path) -> None:
    for stream in ("stdout", "stderr"):
        section[f"{stream}_stream.class"] = "FileStream"
        section[f"{stream}_stream.filename"] = str(log)
        section[f"{stream}_stream.max_bytes"] = str(20 * 1024 * 1024)
        section[f"{stream}_stream.backup_count"] = "1"


def circus_ini(topo: Topology, ports: Ports, layout: Layout, sandbox_id: str, dsn: str) -> str:
    """The supervisor's configuration: etcd, one Patroni node and one API watcher per region."""
    py = sys.executable
    ini = configparser.RawConfigParser()
    ini.optionxform = str  # type: ignore[assignment,method-assign]  # keep env var case
    ini["circus"] = {
        "endpoint": f"ipc://{layout.run / 'circus.sock'}",
        "pubsub_endpoint": f"ipc://{layout.run / 'circus-pub.sock'}",
        "statsd": "False",
        "check_delay": "1",
        "umask": "077",
    }
    ini["socket:front"] = {"host": LOOPBACK, "port": str(ports.front_door), "backlog": "1024"}

    def watcher(name: str, unit: str, cmd: str, extra: dict[str, str]) -> None:
        section = {
            "cmd": cmd,
            "copy_env": "True",
            "working_dir": str(Path.cwd()),
            "stop_signal": "KILL",
            "stop_children": "True",
            "graceful_timeout": "0",
            "max_retry": "-1",
            **extra,
        }
        _stream(section, layout.logs / f"{name}.log")
        ini[f"watcher:{name}"] = section
        ini[f"env:{name}"] = {ENV_SANDBOX: sandbox_id, ENV_UNIT: unit}

    watcher("etcd", "etcd", _etcd_cmd(ports, layout), {"respawn": "True", "stop_signal": "TERM"})
    if ports.s3:  # the backups' bucket: up before any database node archives into it
        watcher("s3", "s3", shlex.join(s3_command(ports.s3)), {"respawn": "True", "stop_signal": "TERM"})
    if ports.links:  # the inter-region links: up before any database node, and for as long as the sandbox
        links = shlex.join([py, "-m", "drillbit.targets.sandbox.linkproxy", "--root", str(layout.root)])
        watcher("links", "links", links, {"respawn": "True", "stop_signal": "TERM", "graceful_timeout": "2"})
    prefix = list(db_command_prefix())
    for r in topo.regions:
        patroni = shlex.join([*prefix, py, "-m", "patroni", str(layout.patroni_config(r.name))])
        # A killed database node stays down (a lost host), until restore_region starts it again.
        watcher(f"db-{r.name}", f"{r.name}/db", patroni, {"respawn": "False", "autostart": "False"})
        if ports.s3:  # archive_command's (and a base backup's) keys for the bucket: moto's, never a real account's
            ini[f"env:db-{r.name}"].update(CREDENTIALS)
        api = shlex.join(
            [
                py,
                "-m",
                "drillbit.sut.serve",
                "--fd",
                "$(circus.sockets.front)",
                "--replica",
                f"{r.name}/$(circus.wid)",
                "--uds",
                str(layout.run / f"api-{r.name}-$(circus.wid).sock"),
                "--version-file",
                str(api_version_file(layout)),
                "--drain-idle-grace",
                str(API_DRAIN_IDLE_GRACE_S),
                "--drain-timeout",
                str(API_DRAIN_TIMEOUT_S),
            ]
        )
        watcher(
            f"api-{r.name}",
            f"{r.name}/api",
            api,
            {
                "respawn": "True",
                "autostart": "False",
                "use_sockets": "True",
                "numprocesses": str(r.api_replicas),
                "warmup_delay": "0",
                # SIGTERM drains the replica without failing a request (drillbit.sut.serve); SIGKILL only after
                "stop_signal": "TERM",
                "graceful_timeout": str(API_DRAIN_TIMEOUT_S + 5),
            },
        )
        ini[f"env:api-{r.name}"].update(
            {
                "DRILL_SUT_DSN": app_dsn(topo, ports, layout, region=r.name) if ports.links else dsn,
                "DRILL_SUT_WRITE_POOL_SIZE": str(topo.api.write_pool_size),
                "DRILL_SUT_READ_POOL_SIZE": str(topo.api.read_pool_size),
                "DRILL_SUT_REQUEST_TIMEOUT": str(topo.api.request_timeout_s),
            }
        )
    scaling = topo.autoscaling
    if scaling.enabled:
        mins = {r.api_replicas for r in topo.regions}
        cmd = shlex.join(
            [
                py,
                "-m",
                "drillbit.targets.sandbox.autoscaler",
                "--state-dir",
                str(layout.state_dir),
                "--regions",
                ",".join(r.name for r in topo.regions),
                "--min",
                str(min(mins)),
                "--max",
                str(scaling.max_replicas),
                "--metric",
                scaling.metric,
                "--target",
                str(scaling.target),
                "--stabilization",
                str(scaling.scale_down_stabilization_s),
                "--interval",
                str(scaling.interval_s),
            ]
        )
        watcher("autoscaler", "autoscaler", cmd, {"respawn": "True", "autostart": "False", "stop_signal": "TERM"})
    if topo.monitoring.enabled:
        on_demand = {"respawn": "True", "autostart": "False", "stop_signal": "TERM", "graceful_timeout": "5"}
        watcher("prometheus", "monitoring/prometheus", prometheus_cmd(layout, ports.prometheus), on_demand)
        watcher("alertmanager", "monitoring/alertmanager", alertmanager_cmd(layout, ports.alertmanager), on_demand)
        exporter = shlex.join([py, "-m", "drillbit.targets.sandbox.exporter", "--state-dir", str(layout.state_dir),
                               "--port", str(ports.exporter)])  # fmt: skip
        watcher("exporter", "monitoring/exporter", exporter, on_demand)
    out = io.StringIO()
    ini.write(out)
    return out.getvalue()
