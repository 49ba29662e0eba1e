"""Portable fault actions and target probes for Chaos Toolkit experiments.

One experiment file runs on every target: these functions dispatch to the target named in the
experiment's configuration (``drillbit_target``, default ``sandbox``). Plain module-level
functions with keyword arguments and JSON-friendly results, as Chaos Toolkit extensions are:

    method:
      - type: action
        name: kill-one-replica
        provider: {type: python, module: drillbit.actions, func: kill_replicas, arguments: {count: 1}}

Configuration keys: ``drillbit_target`` (sandbox), ``drillbit_state_dir`` (default .drill or
$DRILL_STATE_DIR). The Kubernetes and AWS drivers come later; naming them now is a config error.
"""

from __future__ import annotations

from typing import Any

import httpx

from drillbit.errors import ConfigError
from drillbit.targets.sandbox.sandbox import Sandbox

__all__ = [
    "failover_database",
    "front_door_ready",
    "kill_replicas",
    "lose_region",
    "primary_region",
    "replicas",
    "restore_region",
]

Configuration = dict[str, Any] | None


def _target(configuration: Configuration) -> Sandbox:
    cfg = configuration or {}
    name = cfg.get("drillbit_target", "sandbox")
    if name != "sandbox":
        raise ConfigError("configuration.drillbit_target", f"unknown target {name!r}: use sandbox")
    return Sandbox.attach(cfg.get("drillbit_state_dir"))


def kill_replicas(
    count: int | None = None,
    percent: float | None = None,
    region: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """SIGKILL API replicas (a count or a percent, optionally in one region); they are restarted."""
    result = _target(configuration).kill_replicas(count, percent=percent, region=region)
    if not result["landed"]:
        raise RuntimeError(f"the fault did not land: replicas still running after SIGKILL: {result['killed']}")
    return result


def lose_region(region: str, configuration: Configuration = None) -> dict[str, Any]:
    """Lose a whole region: its API replicas and its database node, at once."""
    return _target(configuration).kill_region(region)


def restore_region(region: str, configuration: Configuration = None) -> dict[str, Any]:
    """Bring a lost region back and wait until it serves again."""
    return _target(configuration).restore_region(region)


def failover_database(mode: str = "kill-node", configuration: Configuration = None) -> dict[str, Any]:
    """Fail the database over: kill-node (host loss), kill-postgres, or switchover (planned)."""
    if mode not in ("kill-node", "kill-postgres", "switchover"):
        raise ConfigError(
            "arguments.mode", f"unknown failover mode {mode!r}: use kill-node, kill-postgres or switchover"
        )
    return _target(configuration).failover_db(mode)  # type: ignore[arg-type]


def replicas(configuration: Configuration = None) -> dict[str, dict[str, int]]:
    """Desired and ready API replicas per region."""
    return _target(configuration).replicas()


def primary_region(configuration: Configuration = None) -> str | None:
    """The region whose database node is the primary (None during an outage)."""
    return _target(configuration).primary()


def front_door_ready(configuration: Configuration = None) -> bool:
    """True when the front door answers /readyz with 200 (the database is writable through it)."""
    sb = _target(configuration)
    try:
        return httpx.get(f"{sb.front_door_url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
