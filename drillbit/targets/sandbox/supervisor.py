"""A thin client for the sandbox's process supervisor (circus), over its ipc endpoint."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from circus.client import CircusClient
from circus.exc import CallError

from drillbit.core.errors import EnvironmentFailure

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)

BUSY = "is already running"  # circus: "arbiter is already running <command> command"
BUSY_RETRY_S = 0.05


class Supervisor:
    """Commands for the circus arbiter that runs the sandbox's watchers."""

    def __init__(self, run_dir: Path, timeout: float = 10.0) -> None:
        self.endpoint = f"ipc://{run_dir / 'circus.sock'}"
        self.timeout = timeout

    def call(self, command: str, **props: Any) -> dict[str, Any]:
        """Send one command; one refused because the arbiter is still running another command
        (two clients at once: a drill and the autoscaler) is sent again, within the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._send(command, props)
            if reply.get("status") != "error":  # the `status` command answers a watcher status here
                return reply
            reason = str(reply.get("reason", reply))
            if BUSY not in reason or time.monotonic() > deadline:
                raise EnvironmentFailure(f"supervisor refused {command!r}: {reason}")
            time.sleep(BUSY_RETRY_S)

    def _send(self, command: str, props: dict[str, Any]) -> dict[str, Any]:
        client = CircusClient(endpoint=self.endpoint, timeout=self.timeout)
        try:
            reply: dict[str, Any] = client.send_message(command, **props)
        except CallError as err:
            raise EnvironmentFailure(f"supervisor did not answer {command!r}: {err}") from None
        finally:
            client.stop()
        return reply

    def start(self, name: str) -> None:
        self.call("start", name=name, waiting=True)

    def stop(self, name: str) -> None:
        self.call("stop", name=name, waiting=True)

    def pids(self, name: str) -> list[int]:
        return [int(p) for p in self.call("list", name=name).get("pids", [])]

    def numprocesses(self, name: str) -> int:
        return int(self.call("numprocesses", name=name)["numprocesses"])

    def incr(self, name: str, n: int = 1) -> None:
        """One more replica (or ``n``) than it has now, whatever another client set meanwhile."""
        self.call("incr", name=name, nb=n, waiting=False)

    def decr(self, name: str, n: int = 1) -> None:
        """One fewer (the supervisor stops its oldest, gracefully); returns without waiting for the drain."""
        self.call("decr", name=name, nb=n, waiting=False)

    def set_numprocesses(self, name: str, n: int) -> None:
        self.call("set", name=name, options={"numprocesses": n}, waiting=True)

    def status(self, name: str) -> str:
        return str(self.call("status", name=name)["status"])

    def quit(self) -> None:
        self.call("quit", waiting=True)
