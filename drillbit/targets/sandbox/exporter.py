"""The sandbox exporter: what Prometheus needs from the sandbox and cannot reach by itself.

``python -m drillbit.targets.sandbox.exporter --state-dir DIR --port PORT`` (a supervised process
of a sandbox with monitoring) serves on loopback:

- ``/sd``: Prometheus HTTP service discovery of the API replicas: one target per replica socket
  that accepts a connection (a killed replica's socket refuses: it leaves at the next refresh);
- ``/replica/<socket>/metrics``: that replica's own ``/metrics``, read over its unix socket
  (Prometheus scrapes TCP only); an unreachable replica is a 503, so its ``up`` is 0;
- ``/probe``: the front door's readiness, probed at scrape time, as ``probe_success`` and
  ``probe_duration_seconds`` (the blackbox exporter's names, which the rules read);
- ``/metrics``: ``drillbit_sandbox_replicas_available`` and ``drillbit_sandbox_replicas_min`` per
  region (the sandbox's stand-in for kube-state-metrics' Deployment and HPA series; a lost region
  has 0 available).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drillbit.targets.sandbox import loopback
from drillbit.targets.sandbox.procs import LOOPBACK
from drillbit.targets.sandbox.sandbox import Sandbox, ready_pid

__all__ = ["Exporter", "main"]

log = logging.getLogger(__name__)

WORKLOAD = "trading-api"
_SOCKET = re.compile(r"^api-(?P<region>[a-z][a-z0-9-]*)-(?P<wid>\d+)\.sock$")
PROBE_TIMEOUT_S = 1.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Replicas(Collector):
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def collect(self) -> Iterable[Metric]:
        available = GaugeMetricFamily("drillbit_sandbox_replicas_available", "API replicas ready, per region",
                                      labels=["workload", "region"])  # fmt: skip
        minimum = GaugeMetricFamily("drillbit_sandbox_replicas_min", "the autoscaler's minimum, per region",
                                    labels=["workload", "region"])  # fmt: skip
        # ready replicas per region, asked of each replica's own socket (no supervisor call: this runs
        # every scrape, and a dead replica's socket refuses at once)
        counts = {r.name: 0 for r in self.sandbox.topology.regions}
        path = self.sandbox.topology.api.readiness_path
        for sock in sorted(self.sandbox.layout.run.glob("api-*.sock")):
            m = _SOCKET.match(sock.name)
            if m and m["region"] in counts and ready_pid(sock, path, timeout=PROBE_TIMEOUT_S) is not None:
                counts[m["region"]] += 1
        for region in self.sandbox.topology.regions:
            available.add_metric([WORKLOAD, region.name], counts[region.name])
            minimum.add_metric([WORKLOAD, region.name], region.api_replicas)
        yield available
        yield minimum


class Exporter:
    """The exporter's answers, independent of the HTTP server (unit-testable)."""

    def __init__(self, sandbox: Sandbox, port: int) -> None:
        self.sandbox, self.port = sandbox, port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Replicas(sandbox))

    def _sockets(self) -> list[Path]:
        return sorted(p for p in self.sandbox.layout.run.glob("api-*.sock") if _SOCKET.match(p.name))

    def discovery(self) -> list[dict[str, object]]:
        groups: list[dict[str, object]] = []
        for sock in self._sockets():
            try:
                with loopback.client(timeout=PROBE_TIMEOUT_S, uds=sock) as client:
                    client.get("http://replica/healthz")
            except httpx.HTTPError:
                continue  # a dead replica's socket: not a target
            m = _SOCKET.match(sock.name)
            assert m is not None
            groups.append({"targets": [f"{LOOPBACK}:{self.port}"],
                           "labels": {"__metrics_path__": f"/replica/{sock.name}/metrics",
                                      "replica": f"{m['region']}/{m['wid']}", "region": m["region"]}})  # fmt: skip
        return groups

    def replica_metrics(self, name: str) -> tuple[int, bytes]:
        if not _SOCKET.match(name):
            return 404, b"no such replica socket\n"
        sock = self.sandbox.layout.run / name
        try:
            with loopback.client(timeout=PROBE_TIMEOUT_S, uds=sock) as client:
                r = client.get("http://replica/metrics")
        except httpx.HTTPError as err:
            return 503, f"replica {name} unreachable: {err}\n".encode()
        return r.status_code, r.content

    def probe(self) -> bytes:
        t0 = time.perf_counter()
        try:
            with loopback.client(timeout=PROBE_TIMEOUT_S) as client:
                url = f"{self.sandbox.front_door_url}{self.sandbox.topology.api.readiness_path}"
                ok = client.get(url).status_code == 200
        except httpx.HTTPError:
            ok = False
        took = time.perf_counter() - t0
        return (f"# TYPE probe_success gauge\nprobe_success {int(ok)}\n"
                f"# TYPE probe_duration_seconds gauge\nprobe_duration_seconds {took:.6f}\n").encode()  # fmt: skip

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


def _handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            path = self.path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            if path == "/sd":
                self._send(200, json.dumps(exporter.discovery()).encode(), "application/json")
            elif len(parts) == 3 and parts[0] == "replica" and parts[2] == "metrics":
                code, body = exporter.replica_metrics(parts[1])
                self._send(code, body, CONTENT_TYPE)
            elif path == "/probe":
                self._send(200, exporter.probe(), CONTENT_TYPE)
            elif path == "/metrics":
                self._send(200, exporter.metrics(), CONTENT_TYPE)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # http.server's names
            return  # one line per scrape would fill the log

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exporter = Exporter(Sandbox.attach(args.state_dir), args.port)
    server = ThreadingHTTPServer((LOOPBACK, args.port), _handler(exporter))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
