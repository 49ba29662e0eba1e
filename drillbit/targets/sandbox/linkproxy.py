"""The link proxy: one asyncio process forwarding every sandbox link, shaped as its state file says.

``python -m drillbit.targets.sandbox.linkproxy --root <sandbox root>`` (a supervised watcher of
the sandbox, so a cut outlives the drill that made it). It reads the links (``links.json``),
polls their shapes (``links-state.json``, see ``drillbit.targets.sandbox.links``) and writes the
generation it applied to ``links-applied.json`` once every change is in force:

- cut: every open connection of the link is reset (RST) and every new one is accepted and reset
  at once, so clients fail fast, as after a route withdrawal, rather than hang;
- latency/jitter: each chunk from the upstream is delivered ``latency ± jitter`` ms after it
  arrived (never before the previous one: order is kept);
- bandwidth: each chunk, each direction, waits its size / rate after the previous one (a
  throttled link reads in slices of a tenth of a second's worth, so the pace is smooth, not one
  16 KiB burst every few seconds).

Buffers are bounded (a slow link pushes back on the sender, as TCP would). A chunk is timed by
the shape in force when it arrived; when the shape changes (a heal, another degrade), the chunks
still held are released on the new shape at once, not after the old one's delays: a heal takes
effect within a poll, whatever backlog a throttle had built.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import signal
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from drillbit.targets.sandbox.links import (
    APPLIED_FILE,
    LOOPBACK,
    LinkShape,
    LinkSpec,
    read_shapes,
    read_specs,
)

__all__ = ["LinkProxy", "main", "run"]

log = logging.getLogger(__name__)

CHUNK = 16 * 1024
QUEUE_CHUNKS = 32  # per direction and connection: at most 512 KiB in flight inside the proxy
POLL_S = 0.05
SLICE_S = 0.1  # a throttled link reads at most this long's worth of its rate at a time
MIN_READ = 256


def read_size(shape: LinkShape) -> int:
    """How much to read at a time: a CHUNK, or a slice of a throttled link's rate (at least MIN_READ bytes)."""
    if shape.bandwidth_kbps <= 0:
        return CHUNK
    return max(MIN_READ, min(CHUNK, int(shape.bandwidth_kbps * 1000 / 8 * SLICE_S)))


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer learns at once that the path is gone."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)
        for t in self.tasks:
            t.cancel()


@dataclass(eq=False)
class _Link:
    spec: LinkSpec
    shape: LinkShape = field(default_factory=LinkShape)
    conns: set[_Conn] = field(default_factory=set)
    server: asyncio.Server | None = None


class LinkProxy:
    """Serves links on loopback; ``apply`` changes their shapes while connections run."""

    def __init__(self, specs: list[LinkSpec], rng: random.Random | None = None) -> None:
        self.links = {s.name: _Link(s) for s in specs}
        self.rng = rng or random.Random()

    async def start(self) -> None:
        for link in self.links.values():
            link.server = await asyncio.start_server(
                functools.partial(self._serve, link), LOOPBACK, link.spec.listen, reuse_address=True, backlog=256
            )

    def port(self, name: str) -> int:
        server = self.links[name].server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for link in self.links.values():
            for conn in list(link.conns):
                conn.reset()
            if link.server is not None:
                link.server.close()
        await asyncio.sleep(0.05)  # the reset connections' handlers finish

    def apply(self, shapes: dict[str, LinkShape]) -> None:
        for name, link in self.links.items():
            shape = shapes.get(name, LinkShape())
            if shape != link.shape:
                log.info("link %s: %s", name, shape)
            link.shape = shape
            if shape.cut:
                for conn in list(link.conns):
                    conn.reset()
                link.conns.clear()

    async def _serve(self, link: _Link, reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if link.shape.cut:
            _reset(client)
            return
        try:
            up_reader, upstream = await asyncio.open_connection(LOOPBACK, link.spec.upstream)
        except OSError:
            _reset(client)  # the service behind the link is down: the client sees that as it would directly
            return
        for w in (client, upstream):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if link.shape.cut:  # cut while we connected
            _reset(client)
            _reset(upstream)
            return
        conn = _Conn(client, upstream)
        link.conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._pump(link, reader, upstream, delayed=False)),
            asyncio.ensure_future(self._pump(link, up_reader, client, delayed=True)),
        ]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            link.conns.discard(conn)
            for w in (client, upstream):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, delayed: bool) -> None:
        """Copy src to dst, each chunk due at its shaped time; EOF half-closes dst."""
        queue: asyncio.Queue[tuple[float, bytes, LinkShape]] = asyncio.Queue(QUEUE_CHUNKS)
        loop = asyncio.get_running_loop()

        async def read() -> None:
            last_due, last_shape = 0.0, link.shape
            try:
                while chunk := await src.read(read_size(link.shape)):
                    shape, now = link.shape, loop.time()
                    if shape != last_shape:  # a new shape times from now, not from the old one's backlog
                        last_due, last_shape = 0.0, shape
                    last_due = self._due(shape, len(chunk), now, last_due, delayed=delayed)
                    await queue.put((last_due, chunk, shape))
            except (OSError, asyncio.IncompleteReadError):
                pass
            await queue.put((0.0, b"", link.shape))

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, chunk, shape = await queue.get()
                if not chunk:
                    with contextlib.suppress(OSError):
                        if dst.can_write_eof():
                            dst.write_eof()
                    return
                while (wait := due - loop.time()) > 0:
                    if link.shape != shape:  # healed or reshaped meanwhile: on the new shape, from now
                        due, shape = self._due(link.shape, len(chunk), loop.time(), 0.0, delayed=delayed), link.shape
                        continue
                    await asyncio.sleep(min(wait, POLL_S))
                dst.write(chunk)
                await dst.drain()
        except OSError:
            return
        finally:
            reading.cancel()

    def _due(self, shape: LinkShape, size: int, now: float, last_due: float, *, delayed: bool) -> float:
        """When a chunk of ``size`` bytes that arrived ``now`` may go on: after the added latency (the
        return direction), after the previous chunk (order is kept) and its share of the bandwidth."""
        due = now
        if delayed and shape.latency_ms > 0:
            spread = self.rng.uniform(-shape.jitter_ms, shape.jitter_ms) if shape.jitter_ms else 0.0
            due = now + max(0.0, shape.latency_ms + spread) / 1000
        due = max(due, last_due)
        if shape.bandwidth_kbps > 0:
            due = max(due, last_due or now) + size * 8 / (shape.bandwidth_kbps * 1000)
        return due


async def run(root: Path, stop: asyncio.Event) -> None:
    """Serve the links of the sandbox under ``root`` until ``stop`` is set."""
    proxy = LinkProxy(read_specs(root))
    applied = -1  # nothing applied yet: write the first generation at once
    generation, shapes = read_shapes(root)
    proxy.apply(shapes)  # before listening: a restarted proxy keeps a cut in force
    await proxy.start()
    log.info("serving %d links", len(proxy.links))
    while not stop.is_set():
        generation, shapes = read_shapes(root)  # a few hundred bytes: cheaper than trusting mtimes
        if generation != applied:
            proxy.apply(shapes)
            ports = {name: proxy.port(name) for name in proxy.links}
            tmp = root / f".{APPLIED_FILE}.tmp"
            tmp.write_text(json.dumps({"generation": generation, "pid": os.getpid(), "ports": ports}))
            tmp.replace(root / APPLIED_FILE)
            applied = generation
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="the sandbox root (links.json, links-state.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(args.root, stop)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
