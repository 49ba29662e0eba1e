"""Run one replica of the trading API: ``python -m sut.serve --fd N --uds PATH --replica NAME``.

``--fd`` is an inherited listening socket (the sandbox's supervisor holds the shared front
door); ``--uds`` is this replica's own unix socket, so it can be probed individually; ``--host``
and ``--port`` bind a TCP socket directly. The replica serves all given sockets at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from pathlib import Path

import uvicorn

from sut.app import create_app

__all__ = ["main"]


def _nodelay(sock: socket.socket) -> socket.socket:
    """Accepted connections inherit TCP_NODELAY: uvicorn writes headers and body separately, and
    Nagle's algorithm with delayed ACKs would add ~40 ms to keep-alive responses."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _sockets(args: argparse.Namespace) -> list[socket.socket]:
    socks: list[socket.socket] = []
    if args.fd is not None:
        socks.append(_nodelay(socket.socket(fileno=args.fd)))
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
    return socks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sut.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--fd", type=int, help="inherited listening socket")
    ap.add_argument("--uds", help="this replica's own unix socket path")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--replica", help="replica label for x-drill-replica (default $DRILL_REPLICA or host/pid)")
    args = ap.parse_args(argv)
    if args.fd is None and args.uds is None and args.port is None:
        ap.error("give at least one of --fd, --uds, --port")
    try:
        app = create_app(replica=args.replica)
    except ValueError as err:
        print(f"sut.serve: error: {err}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    socks = _sockets(args)
    try:
        server.run(sockets=socks)
    finally:
        if args.uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.uds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
