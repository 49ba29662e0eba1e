"""Where a sandbox keeps its state: ``<state dir>/sandbox/`` (``.drill/sandbox`` by default)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_STATE_DIR", "Layout"]

DEFAULT_STATE_DIR = Path(".drill")
# AF_UNIX paths (zmq ipc, postgres sockets, replica sockets) must stay under ~107 bytes.
_MAX_SOCKET_DIR = 60


@dataclass(frozen=True)
class Layout:
    """Every path a sandbox uses, derived from one state directory."""

    state_dir: Path

    @classmethod
    def at(cls, state_dir: Path | str | None = None) -> Layout:
        raw = state_dir or os.environ.get("DRILL_STATE_DIR") or DEFAULT_STATE_DIR
        return cls(Path(raw).resolve())

    @property
    def root(self) -> Path:
        return self.state_dir / "sandbox"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "sandbox.lock"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    @property
    def resolved_topology(self) -> Path:
        """The topology as resolved at ``up`` (sizes taken from the manifests then)."""
        return self.root / "topology.json"

    @property
    def circus_ini(self) -> Path:
        return self.root / "circus.ini"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    def patroni_config(self, region: str) -> Path:
        return self.root / f"patroni-{region}.yml"

    def pg_data(self, region: str) -> Path:
        return self.root / "data" / region

    @property
    def run(self) -> Path:
        """Directory for unix sockets: short enough for AF_UNIX, else under the temp dir."""
        preferred = self.root / "run"
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"drillbit-{digest}"

    def replica_socket(self, region: str, wid: int | str) -> Path:
        return self.run / f"api-{region}-{wid}.sock"

    def ensure(self) -> None:
        for d in (self.root, self.logs, self.run, self.root / "data"):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
