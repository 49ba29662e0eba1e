"""The active-drill record: how a SIGKILLed drill is found and cleaned up by the next invocation.

While a drill runs, ``<state dir>/active-drill.json`` names its pid, run directory, target and
the load generator's process group. A drill that ends (normally or by SIGINT/SIGTERM) removes
it. If the drill was SIGKILLed (or the machine lost power) the record stays; the next ``drill``
invocation finds that its pid is gone and cleans up: stops the orphaned load generator, heals
the target (lost regions restored, nodes left down restarted), and marks the run directory
``crashed`` so its report says so. One drill at a time per state directory: a live record
refuses a second drill.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from drillbit.errors import EnvironmentFailure

__all__ = ["ActiveDrill", "Ledger", "find_orphan", "state_root"]

log = logging.getLogger(__name__)

LEDGER = "active-drill.json"


def state_root(state_dir: Path | str | None = None) -> Path:
    return Path(state_dir or os.environ.get("DRILL_STATE_DIR") or ".drill").resolve()


@dataclass(frozen=True)
class ActiveDrill:
    pid: int
    pid_started: float  # psutil create_time: a recycled pid is not the drill
    run_dir: str
    target: str
    state_dir: str
    load_pgid: int | None = None

    def alive(self) -> bool:
        try:
            return abs(psutil.Process(self.pid).create_time() - self.pid_started) < 1.0
        except psutil.NoSuchProcess:
            return False


class Ledger:
    """The record of the drill running in this process."""

    def __init__(self, state_dir: Path, run_dir: Path, target: str) -> None:
        self.path = state_dir / LEDGER
        me = psutil.Process()
        self.entry = ActiveDrill(me.pid, me.create_time(), str(run_dir.resolve()), target, str(state_dir))

    def open(self) -> Ledger:
        other = read(self.path)
        if other is not None and other.alive():
            raise EnvironmentFailure(f"another drill (pid {other.pid}, {other.run_dir}) is running on this state "
                                     f"directory: wait for it or stop it (kill -INT {other.pid})")  # fmt: skip
        self._write()
        return self

    def note_load(self, pgid: int) -> None:
        self.entry = ActiveDrill(**{**asdict(self.entry), "load_pgid": pgid})
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self.entry), indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def close(self) -> None:
        current = read(self.path)
        if current is not None and current.pid == self.entry.pid:
            self.path.unlink(missing_ok=True)


def read(path: Path) -> ActiveDrill | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return ActiveDrill(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        log.warning("unreadable drill record %s (%s): ignoring it", path, err)
        return None


def find_orphan(state_dir: Path | str | None = None) -> ActiveDrill | None:
    """The record of a drill that died without cleaning up, if any."""
    entry = read(state_root(state_dir) / LEDGER)
    return entry if entry is not None and not entry.alive() else None


def stop_orphaned_load(entry: ActiveDrill) -> bool:
    """SIGKILL the crashed drill's load generator (its own process group), if it still runs."""
    if entry.load_pgid is None:
        return False
    try:
        os.killpg(entry.load_pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def forget(entry: ActiveDrill) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(entry.state_dir) / LEDGER).unlink()
