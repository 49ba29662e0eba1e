"""The sandbox's link proxy on loopback: bytes pass, a cut refuses and resets, latency is added
within bounds, bandwidth paces, and clearing the shape heals (driven through its state file, as
the sandbox drives it)."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drillbit.targets.sandbox import linkproxy
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.links import (
    LINK_SERVICES,
    LinkShape,
    LinkSpec,
    links_touching,
    probe,
    read_shapes,
    wait_applied,
    write_shapes,
    write_specs,
)
from drillbit.targets.sandbox.render import Ports, Secrets, app_dsn, circus_ini, link_specs, patroni_config
from drillbit.targets.sandbox.topology import load_topology

pytestmark = pytest.mark.timeout(30)


class _Upstream(socketserver.BaseRequestHandler):
    """Echo, except an HTTP request, answered like a tiny health endpoint."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            if data.startswith(b"GET "):
                self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                return
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxied:
    def __init__(self, root: Path, spec: LinkSpec) -> None:
        self.root, self.spec = root, spec

    def shape(self, shape: LinkShape) -> None:
        assert wait_applied(self.root, write_shapes(self.root, {self.spec.name: shape}))


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Proxied]:
    upstream = _Server(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, args=(0.05,), daemon=True).start()
    write_specs(tmp_path, [LinkSpec("etcd@a", "etcd", "a", 0, upstream.server_address[1])])
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(linkproxy.run(tmp_path, stop),), daemon=True)
    thread.start()
    assert wait_applied(tmp_path, 0)
    port = json.loads((tmp_path / "links-applied.json").read_text())["ports"]["etcd@a"]
    try:
        yield Proxied(tmp_path, LinkSpec("etcd@a", "etcd", "a", port, upstream.server_address[1]))
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        upstream.shutdown()
        upstream.server_close()


def _echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def test_bytes_pass_both_ways(link: Proxied) -> None:
    payload = bytes(range(256)) * 1000  # 256 kB: several chunks and a full queue
    assert _echo(link.spec.listen, payload) == payload
    assert probe(link.spec) is not None


def test_a_cut_resets_open_connections_and_refuses_new_ones_then_heals(link: Proxied) -> None:
    held = socket.create_connection(("127.0.0.1", link.spec.listen), timeout=5)
    held.sendall(b"x")
    assert held.recv(1) == b"x"
    link.shape(LinkShape(cut=True))
    with pytest.raises(OSError):  # reset: ECONNRESET (or EPIPE) on the open connection
        held.sendall(b"y")
        if not held.recv(1):
            raise ConnectionResetError("closed")
    held.close()
    assert probe(link.spec, timeout=1) is None
    assert probe(link.spec, direct=True) is not None  # the service itself is fine: only the path is cut
    link.shape(LinkShape())
    assert probe(link.spec) is not None
    assert _echo(link.spec.listen, b"back") == b"back"


def test_added_latency_is_measured_within_bounds(link: Proxied) -> None:
    link.shape(LinkShape(latency_ms=150))
    slow = [probe(link.spec) for _ in range(3)]
    assert all(t is not None and 0.145 <= t <= 0.5 for t in slow), slow
    link.shape(LinkShape(latency_ms=100, jitter_ms=50))
    jittered = [probe(link.spec) for _ in range(4)]
    assert all(t is not None and 0.045 <= t <= 0.45 for t in jittered), jittered
    link.shape(LinkShape())
    assert (fast := probe(link.spec)) is not None and fast < 0.1


def test_bandwidth_paces_a_transfer(link: Proxied) -> None:
    link.shape(LinkShape(bandwidth_kbps=800))  # 100 kB/s each way
    started = time.monotonic()
    assert _echo(link.spec.listen, b"z" * 20_000) == b"z" * 20_000  # 20 kB up, 20 kB back: >= 0.2 s each way
    assert 0.2 <= time.monotonic() - started <= 2.0


def test_healing_a_throttled_link_releases_its_backlog_at_once(link: Proxied) -> None:
    """A throttle's backlog is timed by the throttle; the heal must not wait it out (a replica far behind
    a slowed replication link catches up as soon as the link is healed)."""
    link.shape(LinkShape(bandwidth_kbps=8))  # 1 kB/s: 40 kB up and back would take 80 s
    payload = b"q" * 40_000
    got: list[bytes] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: got.append(_echo(link.spec.listen, payload)), daemon=True)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # still held by the throttle
    link.shape(LinkShape())
    thread.join(10)
    assert got == [payload] and time.monotonic() - started < 5.0


def test_a_throttled_link_reads_in_slices_so_its_pace_is_smooth() -> None:
    assert linkproxy.read_size(LinkShape()) == linkproxy.CHUNK
    assert linkproxy.read_size(LinkShape(bandwidth_kbps=16)) == 256  # 2 kB/s: a tenth of a second is 200 B
    assert linkproxy.read_size(LinkShape(bandwidth_kbps=800)) == 10_000  # 100 kB/s: 10 kB per tenth


def test_shapes_round_trip_and_partition_scope(tmp_path: Path) -> None:
    assert read_shapes(tmp_path) == (0, {})
    g = write_shapes(tmp_path, {"postgres@a": LinkShape(cut=True), "etcd@b": LinkShape()})
    assert read_shapes(tmp_path) == (g, {"postgres@a": LinkShape(cut=True)})  # clear shapes are not kept
    specs = [LinkSpec(f"{s}@{r}", s, r, 0, 0) for r in ("a", "b") for s in LINK_SERVICES]
    names = {s.name for s in links_touching(specs, "a", ["a", "b"])}
    assert names == {"postgres@a", "replication@a", "restapi@a", "etcd@a", "postgres@b", "replication@b",
                     "restapi@b"}  # not b's way to the witness


def test_rendering_routes_the_cross_region_paths_through_the_links_and_nothing_else(tmp_path: Path) -> None:
    """Patroni's connect addresses and etcd host go through the node's links (use_proxies: no
    discovery around them); a region's replicas reach their own database directly, the other's
    through its link; without links nothing changes."""
    base = Ports(front_door=1, etcd_client=2, etcd_peer=3, postgres={"region-a": 10, "region-b": 11},
                 restapi={"region-a": 20, "region-b": 21})  # fmt: skip
    links = {f"{s}@{r}": p for p, (s, r) in enumerate(
        [(s, r) for r in ("region-a", "region-b") for s in ("postgres", "replication", "restapi", "etcd")],
        start=100)}  # fmt: skip
    ports = Ports(**{**base.__dict__, "links": links})
    topo, layout, secrets = load_topology(), Layout(tmp_path), Secrets("s", "r", "a", "p")
    cfg = yaml.safe_load(patroni_config(topo, "region-a", ports, secrets, layout, "x"))
    # the replication stream (and pg_rewind) through a link of its own, apart from the clients' path
    assert cfg["postgresql"]["connect_address"] == "127.0.0.1:101" and cfg["postgresql"]["listen"] == "127.0.0.1:10"
    assert cfg["restapi"]["connect_address"] == "127.0.0.1:102" and cfg["restapi"]["listen"] == "127.0.0.1:20"
    assert cfg["etcd3"] == {"hosts": "127.0.0.1:103", "use_proxies": True}
    assert "port=10,104 " in app_dsn(topo, ports, layout, region="region-a")  # own direct, region-b's via its link
    assert "port=100,11 " in app_dsn(topo, ports, layout, region="region-b")
    assert "port=10,11 " in app_dsn(topo, ports, layout)  # the observer's: direct
    assert "linkproxy" in circus_ini(topo, ports, layout, "sbx", app_dsn(topo, ports, layout))
    assert [(s.name, s.listen, s.upstream) for s in link_specs(topo, ports)][:4] == [
        ("postgres@region-a", 100, 10), ("replication@region-a", 101, 10), ("restapi@region-a", 102, 20),
        ("etcd@region-a", 103, 2)]  # fmt: skip
    plain = yaml.safe_load(patroni_config(topo, "region-a", base, secrets, layout, "x"))
    assert plain["etcd3"] == {"hosts": "127.0.0.1:2"} and plain["postgresql"]["connect_address"] == "127.0.0.1:10"
    assert "linkproxy" not in circus_ini(topo, base, layout, "sbx", app_dsn(topo, base, layout))
    assert link_specs(topo, base) == []
