"""The sandbox's backups: continuous WAL archiving and base backups to an S3 bucket, and point-in-time
restore into a fresh node (topology ``backups: {enabled: true}``).

As in production, with a well-kept tool rather than scripts of our own: Barman's cloud scripts
(``barman-cloud-wal-archive`` as every node's ``archive_command``, ``barman-cloud-backup``,
``barman-cloud-restore``, ``barman-cloud-wal-restore`` as the restored node's ``restore_command``).
The bucket is moto's S3 server on loopback, a sandbox process like any other (in memory: the
backups live as long as the sandbox). Only the primary archives (``archive_mode: on``); after a
failover the new primary goes on where the old one stopped, on its new timeline.

A restore goes into a fresh data directory under the sandbox root (``restores/<name>``) and runs as
a standalone postgres on a free loopback port, tagged with the sandbox id (unit ``restore``): a
point-in-time copy beside the cluster, never part of it (archiving off, no primary to follow), and
``down`` stops it with everything else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from drillbit.targets.sandbox import procs
from drillbit.targets.sandbox.binaries import pg_bin_dir
from drillbit.targets.sandbox.unpriv import wrap

__all__ = [
    "BUCKET",
    "CREDENTIALS",
    "RESTORE_UNIT",
    "RestoreFailed",
    "RestoredNode",
    "Store",
    "archive_parameters",
    "create_bucket",
    "restore_command",
    "s3_command",
]

log = logging.getLogger(__name__)

BUCKET = "drillbit-backups"
SERVER_NAME = "sandbox"  # barman's name for the cluster in the bucket
RESTORE_UNIT = "restore"
#: moto accepts any keys; these only keep boto3 from looking for real ones (never a real account's)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "drillbit-sandbox", "AWS_SECRET_ACCESS_KEY": "drillbit-sandbox",
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
_TOOL_TIMEOUT_S = 600.0
#: backups and restores are background work beside a serving cluster (and beside the drill's load
#: generator, on the same cores): they yield the CPU to both, as an operator would throttle them
NICE = ("nice", "-n", "10")


class RestoreFailed(RuntimeError):
    """The restore did not produce a serving node (the reason names the tool or postgres' last words)."""


def _script(name: str) -> str:
    """A barman-cloud script of this interpreter's environment (on PATH or not)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


@dataclass(frozen=True)
class Store:
    """Where the backups go: the sandbox's S3 endpoint, the bucket and barman's server name."""

    endpoint: str  # http://127.0.0.1:<port>
    bucket: str = BUCKET
    server: str = SERVER_NAME

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.server}"

    def args(self) -> list[str]:
        return ["--cloud-provider", "aws-s3", "--endpoint-url", self.endpoint]

    def run(self, script: str, *args: str, timeout: float = _TOOL_TIMEOUT_S) -> str:
        """Run one barman-cloud script against the bucket; its stdout, or RestoreFailed with its last words."""
        argv = [*NICE, _script(script), *self.args(), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                  env={**os.environ, **CREDENTIALS})  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RestoreFailed(f"{script} did not finish within {timeout:g} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise RestoreFailed(f"{script} exited {done.returncode}: {last}")
        return done.stdout


def s3_command(port: int) -> list[str]:
    """The sandbox's object store: moto's S3 server on loopback."""
    return [sys.executable, "-m", "moto.server", "-H", procs.LOOPBACK, "-p", str(port)]


def create_bucket(store: Store) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=store.endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                      aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    s3.create_bucket(Bucket=store.bucket)


def archive_parameters(store: Store, archive_timeout_s: int) -> dict[str, Any]:
    """PostgreSQL settings for continuous archiving to the bucket (gzip'd segments; a forced switch
    every ``archive_timeout_s`` bounds how old the newest archived WAL can be under load). New WAL
    files are created rather than recycled, so a segment switched early compresses to almost
    nothing (a recycled one carries its old contents); created sparse (wal_init_zero off), not by
    writing and syncing 16 MB of zeros in the commit path at every switch (a write stall of a few
    hundred milliseconds on this machine's disk). Every switch starts a new 16 MB segment, so pg_wal
    keeps 1 GB (sparse files: far less on disk): pg_rewind of a demoted primary needs the WAL back to
    the last checkpoint before the two timelines diverged (checkpoint_timeout, 5 min, is ten switches),
    and would find it gone with the 128 MB kept otherwise (found: a partition drill after the
    replication-lag drill could not rewind). Fetching it from the bucket instead (restore_command,
    pg_rewind --restore-target-wal) made every standby run barman-cloud-wal-restore, a Python process
    a segment, whenever streaming paused: seconds of CPU in every partition drill on this machine."""
    command = shlex.join([*NICE, _script("barman-cloud-wal-archive"), *store.args(), "--gzip", store.url,
                          store.server])  # fmt: skip
    return {"archive_mode": "on", "archive_command": f"{command} %p", "archive_timeout": archive_timeout_s,
            "wal_recycle": "off", "wal_init_zero": "off", "wal_keep_size": "1GB"}  # fmt: skip


# -- base backups ----------------------------------------------------------------------------------------


def take_base_backup(store: Store, socket_dir: Path, port: int, superuser: str, name: str) -> dict[str, Any]:
    """A base backup of the node on ``port`` (the primary) while it runs; its catalogue entry."""
    t0 = time.time()
    # an operator's on-demand backup: an immediate checkpoint, not a spread one; uncompressed (gzip
    # doubles the time of a sandbox-sized backup, and the bucket is on loopback)
    store.run("barman-cloud-backup", "--immediate-checkpoint", "--name", name, "-h", str(socket_dir),
              "-p", str(port), "-U", superuser, "-d", "postgres", store.url, store.server)  # fmt: skip
    mine = [b for b in list_backups(store) if b.get("backup_name") == name]
    if not mine:
        raise RestoreFailed(f"barman-cloud-backup finished but the catalogue has no backup named {name!r}")
    return {**mine[-1], "took_s": time.time() - t0}


def list_backups(store: Store) -> list[dict[str, Any]]:
    """Every base backup in the bucket (barman's catalogue), oldest first, with epoch end times."""
    out = json.loads(store.run("barman-cloud-backup-list", "--format", "json", store.url, store.server) or "{}")
    backups = out.get("backups_list", []) if isinstance(out, dict) else []
    for b in backups:
        b["end_epoch"] = _epoch(b.get("end_time_iso") or b.get("end_time"))
        b["begin_epoch"] = _epoch(b.get("begin_time_iso") or b.get("begin_time"))
    return sorted(backups, key=lambda b: b["end_epoch"] or 0.0)


def _epoch(text: Any) -> float | None:
    """barman's times ('Wed Dec  2 23:01:02 2026' in UTC, or ISO) as epoch seconds."""
    if not text:
        return None
    for parse in (lambda s: datetime.fromisoformat(s), lambda s: datetime.strptime(s, "%a %b %d %H:%M:%S %Y")):
        with contextlib.suppress(ValueError):
            dt = parse(str(text))
            return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return None


# -- restore ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoredNode:
    """A standalone postgres restored from the bucket, beside the sandbox."""

    data_dir: Path
    socket_dir: Path
    port: int
    pid: int

    def conninfo(self, dbname: str, user: str) -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir), port=self.port, dbname=dbname, user=user,
                                              connect_timeout=5)  # fmt: skip


def restore_command(store: Store) -> str:
    """PostgreSQL's ``restore_command`` fetching a WAL segment from the bucket (``%f`` into ``%p``)."""
    restore = shlex.join([*NICE, _script("barman-cloud-wal-restore"), *store.args(), store.url, store.server])
    return f"{restore} %f %p"


def _recovery_settings(store: Store, node_dir: Path, socket_dir: Path, port: int, target_time: float) -> str:
    at = datetime.fromtimestamp(target_time, UTC).isoformat(sep=" ", timespec="microseconds")
    settings = {
        # a copy beside the cluster: its own address, nothing to follow, nothing archived into the bucket
        "listen_addresses": procs.LOOPBACK, "port": str(port), "unix_socket_directories": str(socket_dir),
        "hba_file": str(node_dir / "pg_hba.conf"), "ident_file": str(node_dir / "pg_ident.conf"),
        "archive_mode": "off", "primary_conninfo": "", "primary_slot_name": "", "synchronous_standby_names": "",
        "cluster_name": "drillbit-restore", "shared_buffers": "16MB",
        "restore_command": restore_command(store), "recovery_target_time": at, "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
    }  # fmt: skip
    return "".join(f"{k} = '{v}'\n" for k, v in settings.items())


def restore(
    store: Store, backup_id: str, node_dir: Path, target_time: float, *, port: int, sandbox_id: str,
    timeout: float = _TOOL_TIMEOUT_S,
) -> tuple[RestoredNode, dict[str, float]]:  # fmt: skip
    """Restore ``backup_id`` into ``node_dir`` and replay the archive to ``target_time``; return the
    node once it serves (out of recovery, promoted) and the seconds each step took. A recovery that
    cannot reach its target stops with postgres' own FATAL: RestoreFailed, never a node."""
    took: dict[str, float] = {}
    t0 = time.monotonic()
    shutil.rmtree(node_dir, ignore_errors=True)
    data, sock = node_dir / "data", node_dir / "run"
    sock.mkdir(parents=True, mode=0o700)
    store.run("barman-cloud-restore", store.url, store.server, backup_id, str(data), timeout=timeout)
    took["download_s"] = time.monotonic() - t0
    os.chmod(data, 0o700)
    (data / "postmaster.pid").unlink(missing_ok=True)
    with open(data / "postgresql.auto.conf", "a") as f:
        f.write(_recovery_settings(store, data, sock, port, target_time))
    (data / "recovery.signal").touch()
    (data / "standby.signal").unlink(missing_ok=True)
    log_file = node_dir / "postgres.log"
    env = {**os.environ, **CREDENTIALS, procs.ENV_SANDBOX: sandbox_id, procs.ENV_UNIT: RESTORE_UNIT}
    with open(log_file, "ab") as out:
        argv = [*NICE, *wrap([str(pg_bin_dir() / "postgres"), "-D", str(data)])]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    node = RestoredNode(data_dir=data, socket_dir=sock, port=port, pid=proc.pid)
    t1 = time.monotonic()
    deadline = t1 + timeout
    while True:
        if proc.poll() is not None:
            raise RestoreFailed(f"the restored postgres exited {proc.returncode}: {_last_words(log_file)}")
        if _serving(node):
            break
        if time.monotonic() >= deadline:
            stop(node_dir, sandbox_id)
            raise RestoreFailed(f"the restored node was not serving within {timeout:g} s: {_last_words(log_file)}")
        time.sleep(0.1)
    took["replay_s"] = time.monotonic() - t1
    return node, took


def _serving(node: RestoredNode) -> bool:
    """Out of recovery and answering queries (``promote`` done)."""
    try:
        with psycopg.connect(node.conninfo("postgres", "postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return row is not None and row[0] is False


def _last_words(log_file: Path) -> str:
    """postgres' most telling line: its last FATAL or PANIC (the reason a recovery stopped), else its last line."""
    try:
        lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    fatal = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln]
    return (fatal or lines or ["no log"])[-1][-400:]


def stop(node_dir: Path, sandbox_id: str) -> int:
    """Stop every restored node of the sandbox and remove ``node_dir``; how many processes were killed."""
    left = procs.tagged(sandbox_id, RESTORE_UNIT)
    killed = procs.kill(left)
    procs.wait_gone(left, timeout=10.0)
    shutil.rmtree(node_dir, ignore_errors=True)
    return len(killed)
