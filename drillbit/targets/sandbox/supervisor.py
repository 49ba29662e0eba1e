"""A thin client for the sandbox's process supervisor (circus), over its ipc endpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from circus.client import CircusClient
from circus.exc import CallError

from drillbit.core.errors import EnvironmentFailure

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """Commands for the circus arbiter that runs the sandbox's watchers."""

    def __init__(self, run_dir: Path, timeout: float = 10.0) -> None:
        self.endpoint = f"ipc://{run_dir / 'circus.sock'}"
        self.timeout = timeout

    def call(self, command: str, **props: Any) -> dict[str, Any]:
        client = CircusClient(endpoint=self.endpoint, timeout=self.timeout)
        try:
            reply: dict[str, Any] = client.send_message(command, **props)
        except CallError as err:
            raise EnvironmentFailure(f"supervisor did not answer {command!r}: {err}") from None
        finally:
            client.stop()
        if reply.get("status") == "error":  # the `status` command answers a watcher status here
            raise EnvironmentFailure(f"supervisor refused {command!r}: {reply.get('reason', reply)}")
        return reply

    def start(self, name: str) -> None:
        self.call("start", name=name, waiting=True)

    def stop(self, name: str) -> None:
        self.call("stop", name=name, waiting=True)

    def pids(self, name: str) -> list[int]:
        return [int(p) for p in self.call("list", name=name).get("pids", [])]

    def numprocesses(self, name: str) -> int:
        return int(self.call("numprocesses", name=name)["numprocesses"])

    def set_numprocesses(self, name: str, n: int) -> None:
        self.call("set", name=name, options={"numprocesses": n}, waiting=True)

    def status(self, name: str) -> str:
        return str(self.call("status", name=name)["status"])

    def quit(self) -> None:
        self.call("quit", waiting=True)
