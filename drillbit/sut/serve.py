"""Run one replica of the trading API: ``python -m drillbit.sut.serve --fd N --uds PATH --replica NAME``.

``--fd`` is an inherited listening socket (the sandbox's supervisor holds the shared front
door); ``--uds`` is this replica's own unix socket, so it can be probed individually; ``--host``
and ``--port`` bind a TCP socket directly. The replica serves all given sockets at once.

Joining and leaving the shared front door without failing a request:

- join: the replica serves its own sockets at once, but takes connections from ``--fd`` only
  once it is ready (a pooled connection to the writable primary, what /readyz checks), or after
  ``--join-timeout`` seconds whatever the database says, so a new replica never answers its
  first requests from a cold pool;
- leave (SIGTERM): stop accepting (close this process's copy of every listening socket: the
  kernel queue of the shared socket belongs to the other replicas, which accept what is queued);
  every response from then on carries ``Connection: close``, so each keep-alive connection is
  closed by the answer to its next request, the one moment the client knows not to reuse it; a
  connection still idle after ``--drain-idle-grace`` seconds is closed only if no byte of a
  request has arrived on it (checked in the socket's receive queue and the parser's buffer: a
  request that arrived is answered, with ``Connection: close``), so a client sees at worst an
  orderly FIN on an idle pooled connection, which pooling clients check before reuse;
  in-flight requests finish; after ``--drain-timeout`` whatever is left is cut.

uvicorn's own shutdown instead closes idle connections at once (racing a client that is
sending on one: the close with unread data resets the connection, and the request fails) and
ends in-flight responses without ``Connection: close`` before closing their connections.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import termios
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from drillbit.sut.app import Lifecycle, create_app, wait_ready

__all__ = ["DrainPolicy", "DrainingProtocol", "DrainingServer", "main", "read_version"]

log = logging.getLogger(__name__)


def _nodelay(sock: socket.socket) -> socket.socket:
    """Accepted connections inherit TCP_NODELAY: uvicorn writes headers and body separately, and
    Nagle's algorithm with delayed ACKs would add ~40 ms to keep-alive responses."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _unread_bytes(fd: int) -> int:
    """Bytes waiting in a socket's receive queue (FIONREAD/SIOCINQ: TCP and unix stream sockets)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    except OSError:
        return 0
    return buf[0]


class DrainingProtocol(H11Protocol):
    """uvicorn's h11 protocol that never closes a connection a request has arrived on."""

    def has_unread(self) -> bool:
        """A request (or part of one) arrived and is not answered yet: in the parser or the socket."""
        if self.conn.trailing_data[0]:
            return True
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        return sock is not None and _unread_bytes(sock.fileno()) > 0

    def idle(self) -> bool:
        """Between requests: no request in progress and nothing received."""
        return (self.cycle is None or self.cycle.response_complete) and not self.has_unread()

    def close_if_idle(self) -> bool:
        """Close the connection if it is idle; True when it is closed (or closing)."""
        if self.transport.is_closing():
            return True
        if not self.idle():
            return False
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()
        return True

    def timeout_keep_alive_handler(self) -> None:
        # uvicorn closes an idle connection when its keep-alive timer fires; a request that arrived
        # in the same instant would be reset with it: serve that request and arm the timer again.
        if not self.transport.is_closing() and self.has_unread():
            handler = self.timeout_keep_alive_handler
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, handler)
            return
        super().timeout_keep_alive_handler()


@dataclass(frozen=True)
class DrainPolicy:
    """How a replica joins the front door and leaves it (seconds)."""

    join_timeout: float = 5.0
    idle_grace: float = 1.0
    drain_timeout: float = 10.0

    def __post_init__(self) -> None:
        if min(self.join_timeout, self.idle_grace, self.drain_timeout) < 0:
            raise ValueError("the join and drain times must be >= 0")


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a readiness-gated join of the shared socket and a drain on exit."""

    def __init__(
        self, config: uvicorn.Config, app: Starlette, policy: DrainPolicy, front: socket.socket | None = None
    ) -> None:
        super().__init__(config)
        self.app, self.policy, self.front = app, policy, front
        self.lifecycle: Lifecycle = app.state.lifecycle

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        own = [s for s in sockets or [] if s is not self.front]
        await super().startup(sockets=own)
        if self.front is None or self.should_exit:
            return
        if not await wait_ready(self.app, self.policy.join_timeout):
            log.warning("not ready after %.1f s: joining the front door anyway", self.policy.join_timeout)
        if self.should_exit:
            return
        config = self.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        loop = asyncio.get_running_loop()
        self.servers.append(await loop.create_server(protocol, sock=self.front, backlog=config.backlog))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.lifecycle.draining = True
        for server in self.servers:
            server.close()  # stop accepting: closes this process's copy of each listening socket
        for sock in sockets or []:
            sock.close()
        conns = self.server_state.connections
        log.warning("draining %d connection(s), %d request(s) in flight", len(conns), len(self.server_state.tasks))
        closed_idle = 0
        while (conns or self.server_state.tasks) and not self.force_exit:
            elapsed = loop.time() - start
            if elapsed >= self.policy.drain_timeout:
                break
            if elapsed >= self.policy.idle_grace:
                for conn in list(conns):
                    if isinstance(conn, DrainingProtocol) and not conn.transport.is_closing():
                        closed_idle += conn.close_if_idle()
            await asyncio.sleep(0.01)
        left = len(conns)
        for conn in list(conns):
            conn.transport.abort()
        for task in self.server_state.tasks:
            task.cancel(msg="drain timeout exceeded")
        log.warning(
            "drained in %.2f s: %d idle connection(s) closed after the grace period, %d cut at the timeout",
            loop.time() - start,
            closed_idle,
            left,
        )
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


def read_version(path: str | None) -> str | None:
    """The version named in ``path`` (the deploy's record of what runs), or None if there is none."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def _sockets(args: argparse.Namespace) -> tuple[list[socket.socket], socket.socket | None]:
    socks: list[socket.socket] = []
    front = None
    if args.fd is not None:
        front = _nodelay(socket.socket(fileno=args.fd))
        socks.append(front)
    if args.uds is not None:
        path = Path(args.uds)
        path.unlink(missing_ok=True)
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.bind(str(path))
        u.listen(128)
        socks.append(u)
    if args.port is not None:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((args.host, args.port))
        t.listen(1024)
        socks.append(_nodelay(t))
    return socks, front


def _drained(signum: int, frame: FrameType | None) -> None:
    """uvicorn raises the signal it stopped on again once it is done; by then the drain is over."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drillbit.sut.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--fd", type=int, help="inherited listening socket (a front door shared with other replicas)")
    ap.add_argument("--uds", help="this replica's own unix socket path")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--replica", help="replica label for x-drill-replica (default $DRILL_REPLICA or host/pid)")
    ap.add_argument(
        "--version-file", help="file naming the code version to report (else $DRILL_APP_VERSION, else the default)"
    )
    ap.add_argument("--join-timeout", type=float, default=5.0, help="longest wait for readiness before joining --fd")
    ap.add_argument("--drain-idle-grace", type=float, default=1.0, help="on SIGTERM, keep idle connections this long")
    ap.add_argument("--drain-timeout", type=float, default=10.0, help="on SIGTERM, cut what is left after this long")
    args = ap.parse_args(argv)
    if args.fd is None and args.uds is None and args.port is None:
        ap.error("give at least one of --fd, --uds, --port")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        policy = DrainPolicy(args.join_timeout, args.drain_idle_grace, args.drain_timeout)
        version = read_version(args.version_file)
        app = create_app(replica=args.replica, **({"version": version} if version else {}))
    except ValueError as err:
        print(f"drillbit.sut.serve: error: {err}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_level="warning", http=DrainingProtocol, ws="none")
    socks, front = _sockets(args)
    server = DrainingServer(config, app, policy, front)
    signal.signal(signal.SIGTERM, _drained)
    try:
        server.run(sockets=socks)
    finally:
        if args.uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.uds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
