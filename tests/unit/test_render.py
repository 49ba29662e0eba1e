"""Rendered sandbox configuration: Patroni timings applied, no secret in DSNs or circus.ini."""

from pathlib import Path

import yaml

from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.render import Ports, Secrets, app_dsn, circus_ini, patroni_config
from drillbit.targets.sandbox.topology import load_topology

PORTS = Ports(
    front_door=18080,
    etcd_client=12379,
    etcd_peer=12380,
    postgres={"region-a": 15432, "region-b": 15433},
    restapi={"region-a": 18008, "region-b": 18009},
)
SECRETS = Secrets(superuser="su-SECRET", replication="repl-SECRET", app="app-SECRET", restapi="api-SECRET")


def test_patroni_config_carries_the_topology_timings(tmp_path: Path) -> None:
    topo = load_topology()
    cfg = yaml.safe_load(patroni_config(topo, "region-b", PORTS, SECRETS, Layout(tmp_path), "scope-x"))
    dcs = cfg["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["primary_start_timeout"]) == (20, 1, 3, 0)
    assert cfg["postgresql"]["listen"] == "127.0.0.1:15433"
    assert cfg["etcd3"]["hosts"] == "127.0.0.1:12379"
    assert cfg["restapi"]["listen"] == "127.0.0.1:18009"


def test_app_dsn_is_multi_host_read_write_and_holds_no_password(tmp_path: Path) -> None:
    dsn = app_dsn(load_topology(), PORTS, Layout(tmp_path))
    assert "port=15432,15433" in dsn and "target_session_attrs=read-write" in dsn
    assert "SECRET" not in dsn and "password" not in dsn


def test_circus_ini_holds_no_secret_and_only_loopback(tmp_path: Path) -> None:
    topo = load_topology()
    layout = Layout(tmp_path)
    ini = circus_ini(topo, PORTS, layout, "sbx", app_dsn(topo, PORTS, layout))
    assert "SECRET" not in ini
    assert "0.0.0.0" not in ini
    assert "[watcher:api-region-a]" in ini and "numprocesses = 2" in ini
    assert "[watcher:db-region-b]" in ini


def test_backups_archive_every_nodes_wal_to_the_sandbox_bucket_and_run_its_s3_server(tmp_path: Path) -> None:
    """backups.enabled: archive_command is barman-cloud-wal-archive to the loopback bucket, every db
    watcher gets moto's (not a real account's) keys, and the S3 server is a supervised process."""
    import dataclasses

    topo = load_topology()
    topo = topo.model_copy(update={"backups": topo.backups.model_copy(update={"enabled": True})})
    ports = dataclasses.replace(PORTS, s3=19000)
    layout = Layout(tmp_path)
    pg = yaml.safe_load(patroni_config(topo, "region-a", ports, SECRETS, layout, "s"))["postgresql"]
    params = pg["parameters"]
    assert params["archive_mode"] == "on" and params["archive_timeout"] == topo.backups.archive_timeout_s
    # a switch per archive_timeout: pg_wal keeps enough for pg_rewind back to the last checkpoint
    assert params["wal_keep_size"] == "1GB" and params["wal_init_zero"] == "off" and "recovery_conf" not in pg
    assert "barman-cloud-wal-archive" in params["archive_command"]
    assert "--endpoint-url http://127.0.0.1:19000" in params["archive_command"]
    assert params["archive_command"].endswith(" %p")
    ini = circus_ini(topo, ports, layout, "sbx", app_dsn(topo, ports, layout))
    assert "[watcher:s3]" in ini and "moto.server -H 127.0.0.1 -p 19000" in ini
    assert ini.count("AWS_ACCESS_KEY_ID = drillbit-sandbox") == len(topo.regions)
    assert 19000 in ports.all()


def test_without_backups_nothing_is_archived_and_no_s3_server_runs(tmp_path: Path) -> None:
    topo = load_topology()
    assert topo.backups.enabled is False
    layout = Layout(tmp_path)
    pg = yaml.safe_load(patroni_config(topo, "region-a", PORTS, SECRETS, layout, "s"))["postgresql"]
    params = pg["parameters"]
    assert "archive_mode" not in params and "archive_command" not in params and "wal_keep_size" not in params
    ini = circus_ini(topo, PORTS, layout, "sbx", app_dsn(topo, PORTS, layout))
    assert "[watcher:s3]" not in ini and "AWS_ACCESS_KEY_ID" not in ini
