"""Find, kill and wait for the sandbox's processes, and choose its ports.

Every process the sandbox starts carries two environment variables, inherited by whatever it
spawns in turn (Patroni passes its environment on to postgres):

- ``DRILLBIT_SANDBOX``: the sandbox id, so ``down`` finds everything, even processes that were
  detached from their parent (Patroni starts postgres in a session of its own);
- ``DRILLBIT_UNIT``: what the process belongs to (``etcd``, ``supervisor``, ``<region>/db``,
  ``<region>/api``), so a region or a database node can be killed as a whole.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator

import psutil

__all__ = [
    "ENV_SANDBOX",
    "ENV_UNIT",
    "PortInUse",
    "free_ports",
    "kill",
    "port_in_use",
    "tagged",
    "wait_gone",
    "wait_ports_free",
]

log = logging.getLogger(__name__)

ENV_SANDBOX = "DRILLBIT_SANDBOX"
ENV_UNIT = "DRILLBIT_UNIT"
LOOPBACK = "127.0.0.1"


class PortInUse(Exception):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.port = port


def tagged(sandbox_id: str, unit: str | None = None, *, prefix: str | None = None) -> list[psutil.Process]:
    """Live processes of one sandbox, optionally only one unit or units starting with ``prefix``."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if env.get(ENV_SANDBOX) != sandbox_id:
            continue
        u = env.get(ENV_UNIT, "")
        if unit is not None and u != unit:
            continue
        if prefix is not None and not u.startswith(prefix):
            continue
        found.append(proc)
    return found


def kill(procs: Iterable[psutil.Process], sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to each process still alive; return the pids signalled."""
    sent = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
            sent.append(proc.pid)
    return sent


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for processes to exit; return those still alive after ``timeout``."""
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    return list(alive)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on (or is bound to) ``host:port``.

    SO_REUSEADDR makes connections lingering in TIME_WAIT not count: the services themselves
    bind with it, so only a live socket can stop them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


@contextlib.contextmanager
def _held(count: int) -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            held.append(s)
        yield held
    finally:
        for s in held:
            s.close()


def free_ports(wanted: list[int]) -> list[int]:
    """Resolve a list of requested ports: 0 becomes a distinct free port, a fixed port is checked.

    Raises PortInUse for the first fixed port already taken.
    """
    for p in wanted:
        if p and port_in_use(p):
            raise PortInUse(p)
    with _held(sum(1 for p in wanted if p == 0)) as held:
        picked = iter(s.getsockname()[1] for s in held)
        return [p or next(picked) for p in wanted]


def wait_ports_free(ports: Iterable[int], timeout: float) -> list[int]:
    """Wait until no port in ``ports`` is held; return those still held after ``timeout``."""
    deadline = time.monotonic() + timeout
    busy = [p for p in ports if port_in_use(p)]
    while busy and time.monotonic() < deadline:
        time.sleep(0.05)
        busy = [p for p in busy if port_in_use(p)]
    return busy
