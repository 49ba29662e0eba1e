"""A scripted loopback HTTP server whose outages you control: drillbit's ground truth.

drillbit's numbers must hold against truth. This server fails (503) or freezes (holds every
response until the window ends) for exactly the window it is told, and reports the window in
its own clock, so a test or ``drill calibrate`` can compare a measured RTO or a latency
percentile with what really happened.

    python -m drillbit.testing.groundtruth --port 0 --port-file /tmp/port [--service-time 0.001] [--capacity 200]

With ``--capacity N`` it is a server of known capacity (``drill bench``'s truth): one queue served
at exactly N requests a second, first come first served, so up to N req/s a request waits only
its own 1/N s, and beyond N the queue (and every request's latency) grows without bound.

Control (exempt from outages):
    POST /_control/outage {"kind": "fail"|"freeze", "start_in": 1.0, "duration": 2.0}
         -> {"kind", "start", "end"}   (epoch seconds, the server's truth)
    GET  /_control/outages -> every outage scheduled so far
Everything else answers 200 ``{"ok": true}`` after ``service_time`` (outside outages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["GroundTruthApp", "Outage", "main"]


@dataclass(frozen=True)
class Outage:
    kind: str  # "fail" | "freeze"
    start: float  # epoch seconds
    end: float

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


class GroundTruthApp:
    """A raw ASGI app (no framework overhead: it must outrun the load generators it calibrates)."""

    def __init__(self, service_time: float = 0.0, capacity: float | None = None) -> None:
        self.service_time = service_time
        self.capacity = capacity
        self.outages: list[Outage] = []
        self._free_at = 0.0  # capacity: when the single queue's server is next free (monotonic s)

    def _active(self, t: float) -> Outage | None:
        for o in self.outages:
            if o.covers(t):
                return o
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if path.startswith("/_control/"):
            status, payload = self._control(scope["method"], path, body)
        else:
            status, payload = await self._serve()
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _serve(self) -> tuple[int, dict[str, Any]]:
        outage = self._active(time.time())
        if outage is not None and outage.kind == "freeze":
            # everything that arrives during a freeze is answered when it ends
            await asyncio.sleep(max(0.0, outage.end - time.time()))
        elif outage is not None:
            return 503, {"ok": False, "error": "scripted outage"}
        if self.capacity:  # FIFO: served 1/capacity s after the one before it, or now if idle
            now = time.monotonic()
            self._free_at = max(now, self._free_at) + 1.0 / self.capacity
            await asyncio.sleep(self._free_at - now)
        if self.service_time:
            await asyncio.sleep(self.service_time)
        return 200, {"ok": True}

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/_control/outages":
            return 200, [asdict(o) for o in self.outages]
        if method == "POST" and path == "/_control/outage":
            try:
                req = json.loads(body)
                kind, start_in, duration = req["kind"], float(req.get("start_in", 0.0)), float(req["duration"])
            except (ValueError, KeyError, TypeError) as err:
                return 422, {"error": f"bad outage request: {err}"}
            if kind not in ("fail", "freeze") or duration <= 0 or start_in < 0:
                return 422, {"error": "kind must be fail|freeze, duration > 0, start_in >= 0"}
            start = time.time() + start_in
            outage = Outage(kind, start, start + duration)
            self.outages.append(outage)
            return 200, asdict(outage)
        return 404, {"error": "unknown control endpoint"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drillbit.testing.groundtruth", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    ap.add_argument("--service-time", type=float, default=0.0, help="seconds each normal response takes")
    ap.add_argument("--capacity", type=float, default=None, help="requests a second served (one FIFO queue)")
    args = ap.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "::1":
        ap.error("--host must be a loopback address")
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: uvicorn writes headers and body separately, and Nagle plus
    # delayed ACKs would otherwise add ~40 ms to every keep-alive response
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    sock.listen(4096)
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(sock.getsockname()[1]))
        os.replace(tmp, args.port_file)
    config = uvicorn.Config(
        GroundTruthApp(args.service_time, args.capacity), lifespan="on", access_log=False, log_level="warning",
        backlog=4096,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
