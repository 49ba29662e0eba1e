"""The sandbox's inter-region links: what they are, their shapes (cut, latency, bandwidth), probes.

These machines have no ``tc netem`` and no iptables, so every path between the regions, and from
each region to the witness (etcd), runs through a TCP proxy drillbit owns
(``drillbit.targets.sandbox.linkproxy``, one supervised process serving every link, in the style
of Toxiproxy, which no registry here packages). With ``links.enabled`` in the topology:

- ``postgres@<r>``: another region's way into r's PostgreSQL for its API replicas (their DSN);
- ``replication@<r>``: another region's way into r's PostgreSQL for the database itself: the
  replication stream and pg_rewind (r's Patroni ``postgresql.connect_address``), apart from the
  clients' path so a slow replication link (``degrade_replication``) lags the replica without
  slowing the other region's API;
- ``restapi@<r>``: another region's way into r's Patroni REST API (``restapi.connect_address``:
  what the other node asks before it promotes itself);
- ``etcd@<r>``: r's way to the witness (r's Patroni ``etcd3.hosts``, with ``use_proxies``).

A region's own API replicas reach its own database directly, and the observer (drills, the
heartbeat read-back) reaches everything directly: a partition cuts the regions apart, not the
drill from them. The front door is shared (one socket for every replica), so clients reach both
sides of a partition: the case that lets an isolated primary keep acknowledging writes.

The shapes live in ``<sandbox>/links-state.json`` (written atomically with a generation); the
proxy polls it and writes the generation it applied to ``links-applied.json``. So a cut outlives
the drill process that made it, and a later ``heal`` (any process) clears it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LINK_SERVICES",
    "PG_SERVICES",
    "LinkShape",
    "LinkSpec",
    "applied_generation",
    "link_name",
    "links_touching",
    "probe",
    "read_shapes",
    "read_specs",
    "wait_applied",
    "write_shapes",
    "write_specs",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
LINK_SERVICES = ("postgres", "replication", "restapi", "etcd")
#: the services that speak PostgreSQL's protocol
PG_SERVICES = ("postgres", "replication")
SPECS_FILE = "links.json"
STATE_FILE = "links-state.json"
APPLIED_FILE = "links-applied.json"


def link_name(service: str, region: str) -> str:
    return f"{service}@{region}"


@dataclass(frozen=True)
class LinkSpec:
    """One proxied path: the proxy listens on ``listen`` and forwards to ``upstream`` (loopback)."""

    name: str
    service: str  # postgres | restapi | etcd
    region: str
    listen: int
    upstream: int


@dataclass(frozen=True)
class LinkShape:
    """What is done to a link: cut (connections refused and reset), or delayed and throttled.

    ``latency_ms`` is added to every chunk from the upstream back to the client (so a round trip
    grows by it, as one ``netem delay`` on the path would), ``jitter_ms`` spreads it uniformly
    (order kept), ``bandwidth_kbps`` (kilobits/s, each direction, each connection) paces it."""

    cut: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float = 0.0

    @property
    def clear(self) -> bool:
        return self == LinkShape()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def write_specs(root: Path, specs: list[LinkSpec]) -> None:
    _write_json(root / SPECS_FILE, [asdict(s) for s in specs])


def read_specs(root: Path) -> list[LinkSpec]:
    """The links of the sandbox under ``root`` ([] when it runs without them)."""
    try:
        return [LinkSpec(**s) for s in json.loads((root / SPECS_FILE).read_text())]
    except FileNotFoundError:
        return []


def read_shapes(root: Path) -> tuple[int, dict[str, LinkShape]]:
    """(generation, shape per link name); links not named are clear."""
    try:
        data = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return 0, {}
    except ValueError as err:  # a torn write cannot happen (atomic replace); a hand edit can
        log.warning("unreadable %s (%s): every link clear", root / STATE_FILE, err)
        return 0, {}
    return int(data.get("generation", 0)), {k: LinkShape(**v) for k, v in data.get("links", {}).items()}


def write_shapes(root: Path, shapes: dict[str, LinkShape]) -> int:
    """Replace every link's shape (links not named become clear); returns the new generation."""
    generation = read_shapes(root)[0] + 1
    _write_json(root / STATE_FILE, {"generation": generation,
                                    "links": {k: asdict(v) for k, v in shapes.items() if not v.clear}})  # fmt: skip
    return generation


def applied_generation(root: Path) -> int:
    try:
        return int(json.loads((root / APPLIED_FILE).read_text())["generation"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return -1


def wait_applied(root: Path, generation: int, timeout: float = 5.0) -> bool:
    """True once the proxy has applied ``generation`` (or a later one) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while applied_generation(root) < generation:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def links_touching(specs: list[LinkSpec], region: str, regions: list[str]) -> list[LinkSpec]:
    """Every link a region's traffic to the others and to the witness crosses: its own links, and
    with two regions the other region's ways in (only this region's traffic crosses them)."""
    own = [s for s in specs if s.region == region]
    others = [r for r in regions if r != region]
    if len(others) == 1:
        own += [s for s in specs if s.region == others[0] and s.service != "etcd"]
    return own


_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def _exchange(spec: LinkSpec, port: int, timeout: float) -> float:
    """One request/answer over ``port`` in the service's own protocol; seconds taken. Raises OSError."""
    start = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.service in PG_SERVICES:  # SSLRequest: PostgreSQL answers one byte, S or N
            s.sendall(_SSL_REQUEST)
            answer = s.recv(1)
            if answer not in (b"S", b"N"):
                raise ConnectionError(f"no PostgreSQL answer through {spec.name} (got {answer!r})")
        else:  # HTTP: Patroni's REST API and etcd both answer GET /health (etcd) or anything (Patroni)
            path = "/health" if spec.service == "etcd" else "/liveness"
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode())
            answer = s.recv(12)
            if not answer.startswith(b"HTTP/"):
                raise ConnectionError(f"no HTTP answer through {spec.name} (got {answer!r})")
    return time.monotonic() - start


def probe(spec: LinkSpec, timeout: float = 2.0, *, direct: bool = False) -> float | None:
    """Seconds one request/answer took across the link (``direct``: around it), None when it failed."""
    with contextlib.suppress(OSError):
        return _exchange(spec, spec.upstream if direct else spec.listen, timeout)
    return None
