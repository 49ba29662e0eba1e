"""The sandbox's monitoring: real Prometheus and Alertmanager (Debian's packages) with the
platform's own rules and routes (``infra/monitoring``), rendered for the sandbox's ports.

Prometheus scrapes every API replica (each through the sandbox exporter, which reaches the
replica's own unix socket: ``drillbit.targets.sandbox.exporter``; the replicas are discovered over
HTTP service discovery, so a killed replica leaves and its replacement joins within a second),
the front door's readiness as ``probe_success`` (the blackbox-exporter convention the rules read),
every Patroni member's REST API ``/metrics``, and the sandbox's replica counts per region. The
Alertmanager configuration is the platform's with every webhook pointed at the drill's receiver.

Pure functions from (topology, ports, layout) to text, plus where the binaries and files are.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.core.project import current as current_project
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.procs import LOOPBACK
from drillbit.targets.sandbox.topology import Topology

__all__ = [
    "ALERTMANAGER_BINARIES",
    "PROMETHEUS_BINARY",
    "alertmanager_binary",
    "alertmanager_cmd",
    "alertmanager_config",
    "monitoring_sources",
    "prometheus_binary",
    "prometheus_cmd",
    "prometheus_config",
    "receiver_url",
]

PROMETHEUS_BINARY = "prometheus"
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's
#: the receiver path drillbit's webhook listens on (drillbit.probes.alerts)
RECEIVER_PATH = "/alerts"
_INSTALL = "install them (apt-get install prometheus prometheus-alertmanager)"


def prometheus_binary() -> str:
    found = shutil.which(PROMETHEUS_BINARY)
    if not found:
        raise EnvironmentFailure(f"monitoring: no {PROMETHEUS_BINARY} on PATH: {_INSTALL}")
    return found


def alertmanager_binary() -> str:
    for name in ALERTMANAGER_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise EnvironmentFailure(f"monitoring: no {' or '.join(ALERTMANAGER_BINARIES)} on PATH: {_INSTALL}")


def monitoring_sources(topo: Topology, topology_file: Path) -> tuple[list[Path], Path]:
    """The rule files (every ``*.yml`` but the ``*_test.yml``) and the Alertmanager configuration the
    topology names, relative to its file; the project's (or drillbit's) ``infra/monitoring`` when
    the topology's folder has none."""
    base = topology_file.resolve().parent
    rules_dir = base / topo.monitoring.rules
    if not rules_dir.is_dir():
        rules_dir = current_project().find("infra", "monitoring", "rules")
    am = base / topo.monitoring.alertmanager
    if not am.is_file():
        am = current_project().find("infra", "monitoring", "alertmanager.yml")
    rules = sorted(p for p in rules_dir.glob("*.yml") if not p.name.endswith("_test.yml")) if rules_dir.is_dir() else []
    problems = []
    if not rules:
        problems.append(f"monitoring.rules: no rule files in {rules_dir}: point it at a folder of Prometheus rules")
    if not am.is_file():
        problems.append(f"monitoring.alertmanager: no such file {am}: point it at an Alertmanager configuration")
    if problems:
        raise ConfigError(str(topology_file), problems)
    return rules, am


def receiver_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}{RECEIVER_PATH}"


def _seconds(value: float) -> str:
    return f"{int(value * 1000)}ms"


def prometheus_config(topo: Topology, *, exporter: int, alertmanager: int, restapi: dict[str, int],
                      rule_files: list[Path]) -> str:  # fmt: skip
    """prometheus.yml: the four jobs the rules read (see infra/monitoring/README.md, "What the rules read")."""
    m = topo.monitoring
    me = f"{LOOPBACK}:{exporter}"
    cfg: dict[str, Any] = {
        "global": {
            "scrape_interval": _seconds(m.scrape_interval_s),
            "scrape_timeout": _seconds(m.scrape_interval_s),
            "evaluation_interval": _seconds(m.evaluation_interval_s),
            "external_labels": {"env": "sandbox"},
        },
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager}"]}]}]},
        "scrape_configs": [
            {"job_name": "trading-api",
             "http_sd_configs": [{"url": f"http://{me}/sd", "refresh_interval": _seconds(m.scrape_interval_s)}]},
            {"job_name": "trading-api-probe", "metrics_path": "/probe", "static_configs": [{"targets": [me]}]},
            {"job_name": "patroni",
             "static_configs": [{"targets": [f"{LOOPBACK}:{port}"], "labels": {"region": region}}
                                for region, port in restapi.items()]},
            {"job_name": "drillbit-sandbox", "static_configs": [{"targets": [me]}]},
        ],
    }  # fmt: skip
    return yaml.safe_dump(cfg, sort_keys=False)


_URL = re.compile(r"^https?://")


def alertmanager_config(source: Path, receiver: str) -> str:
    """The platform's Alertmanager configuration with every webhook sent to ``receiver`` (the drill's)."""
    try:
        cfg = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(str(source), f"unreadable Alertmanager configuration ({err}): fix the file") from None
    receivers = cfg.get("receivers") if isinstance(cfg, dict) else None
    if not isinstance(receivers, list):
        raise ConfigError(str(source), "receivers: expected a list of receivers: fix the file")
    for r in receivers:
        for hook in r.get("webhook_configs") or [] if isinstance(r, dict) else []:
            if isinstance(hook, dict) and _URL.match(str(hook.get("url", ""))):
                hook["url"] = receiver
    return yaml.safe_dump(cfg, sort_keys=False)


def prometheus_cmd(layout: Layout, port: int) -> str:
    return shlex.join([
        prometheus_binary(), f"--config.file={layout.root / 'prometheus.yml'}",
        f"--storage.tsdb.path={layout.root / 'prometheus'}", f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=1d", "--log.level=warn",
    ])  # fmt: skip


def alertmanager_cmd(layout: Layout, port: int) -> str:
    return shlex.join([
        alertmanager_binary(), f"--config.file={layout.root / 'alertmanager.yml'}",
        f"--storage.path={layout.root / 'alertmanager'}", f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",  # no gossip: it would listen on every interface (0.0.0.0:9094)
        "--log.level=warn",
    ])  # fmt: skip
