"""The replica's drain on SIGTERM (drillbit.sut.serve), on real sockets and real server processes.

No database: /healthz answers without one (the replicas get a DSN that refuses connections).
The shared front door is modelled as in the sandbox: this test process holds a listening socket
and two ``python -m drillbit.sut.serve --fd`` processes accept from it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from drillbit.sut.serve import DrainingProtocol

NO_DB = "host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1"
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


# -- the protocol, in process: a request that arrived but is not read yet ---------------------------


async def _hello(scope: dict[str, object], receive: object, send: object) -> None:
    assert callable(send)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _arrived_unread(protocol: type[H11Protocol]) -> tuple[H11Protocol, socket.socket]:
    """A keep-alive connection that answered one request and has a second one waiting unread in
    the server socket's receive queue (reading paused), as when a client sends just as the server
    decides to close."""
    config = uvicorn.Config(_hello, lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: protocol(config, state, {}), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    await loop.sock_sendall(client, REQUEST)
    first = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
    assert first.startswith(b"HTTP/1.1 200")
    (conn,) = state.connections
    assert isinstance(conn, H11Protocol)
    conn.transport.pause_reading()
    await loop.sock_sendall(client, REQUEST)
    await asyncio.sleep(0.05)  # on loopback the bytes are in the server's receive queue by now
    server.close()
    return conn, client


async def _reply(client: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
    except ConnectionResetError:
        return b"<reset>"


def test_the_drain_answers_a_request_that_arrived_on_an_idle_connection() -> None:
    async def scenario() -> tuple[bool, bytes]:
        conn, client = await _arrived_unread(DrainingProtocol)
        assert isinstance(conn, DrainingProtocol)
        closed = conn.close_if_idle()
        conn.transport.resume_reading()
        with client:
            return closed, await _reply(client)

    closed, reply = asyncio.run(scenario())
    assert closed is False
    assert reply.startswith(b"HTTP/1.1 200")


def test_uvicorns_stock_shutdown_resets_that_request() -> None:
    """Why drillbit.sut.serve has its own drain: the same moment under uvicorn's connection.shutdown()."""

    async def scenario() -> bytes:
        conn, client = await _arrived_unread(H11Protocol)
        conn.shutdown()
        with client:
            return await _reply(client)

    assert asyncio.run(scenario()) in (b"<reset>", b"")


# -- whole replicas on a shared front door ---------------------------------------------------------


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def front_door() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    with sock:
        yield sock


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
        r.proc.wait(10)


def _start(replicas: list[Replica], front: socket.socket, name: str, tmp: Path, *opts: str) -> Replica:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drillbit.sut.serve", "--fd", str(front.fileno()), "--replica", name,
             "--join-timeout", "0", *opts],
            env={**os.environ, "DRILL_SUT_DSN": NO_DB},
            pass_fds=[front.fileno()],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    r = Replica(name, proc, log)
    replicas.append(r)
    return r


def _wait_serving(url: str, names: set[str], timeout: float = 20.0) -> None:
    """Until each named replica has answered (new connections spread over the replicas)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while seen != names:
        assert time.monotonic() < deadline, f"replicas {names - seen} never answered"
        try:
            seen.add(httpx.get(f"{url}/healthz", timeout=1.0).headers["x-drill-replica"])
        except httpx.HTTPError:
            time.sleep(0.05)


def test_a_replica_leaving_the_shared_front_door_under_a_tight_keep_alive_loop_fails_no_request(
    front_door: socket.socket, replicas: list[Replica], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{front_door.getsockname()[1]}"
    old = _start(replicas, front_door, "old", tmp_path)
    _start(replicas, front_door, "new", tmp_path)
    _wait_serving(url, {"old", "new"})
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    errors: list[str] = []

    def loop() -> None:  # no think time: the next request leaves the moment an answer arrives
        with httpx.Client(base_url=url, timeout=5.0) as client:
            while not stop.is_set():
                try:
                    r = client.get("/healthz")
                except httpx.HTTPError as err:
                    with lock:
                        errors.append(repr(err))
                    continue
                with lock:
                    outcomes[f"{r.status_code} {r.headers['x-drill-replica']} {r.headers.get('connection', '')}"] += 1

    threads = [threading.Thread(target=loop) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    old.proc.send_signal(signal.SIGTERM)
    exit_code = old.proc.wait(15)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == [], errors[:5]
    assert exit_code == 0, old.log.read_text()
    assert outcomes["200 old close"] > 0, outcomes  # the drain answered with Connection: close
    assert outcomes["200 new "] > outcomes["200 old "] / 10, outcomes  # and the other replica took over


def test_a_request_on_an_idle_connection_during_the_grace_gets_connection_close(
    front_door: socket.socket, replicas: list[Replica], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{front_door.getsockname()[1]}"
    only = _start(replicas, front_door, "only", tmp_path, "--drain-idle-grace", "5")
    _wait_serving(url, {"only"})
    with httpx.Client(base_url=url, timeout=5.0) as client:
        assert "connection" not in client.get("/healthz").headers  # a keep-alive connection, now idle
        only.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the replica is draining: not accepting, the idle connection kept
        assert only.proc.poll() is None
        r = client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["connection"] == "close"
    assert r.json()["draining"] is True
    assert only.proc.wait(5) == 0


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length (head and body may come in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_is_closed_after_the_grace_and_the_replica_exits(
    front_door: socket.socket, replicas: list[Replica], tmp_path: Path
) -> None:
    port = front_door.getsockname()[1]
    only = _start(replicas, front_door, "only", tmp_path, "--drain-idle-grace", "1")
    _wait_serving(f"http://127.0.0.1:{port}", {"only"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(REQUEST)
        assert _read_response(client).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        only.proc.send_signal(signal.SIGTERM)
        assert client.recv(4096) == b""  # an orderly FIN, not a reset
        closed_after = time.monotonic() - t0
    assert only.proc.wait(5) == 0
    assert 0.9 <= closed_after < 3.0
