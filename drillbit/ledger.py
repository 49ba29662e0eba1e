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
import fcntl
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from drillbit.core.errors import EnvironmentFailure
from drillbit.core.safeio import write_text

__all__ = ["ActiveDrill", "Ledger", "find_orphan", "state_root"]

log = logging.getLogger(__name__)

LEDGER = "active-drill.json"


def state_root(state_dir: Path | str | None = None) -> Path:
    return Path(state_dir or os.environ.get("DRILL_STATE_DIR") or ".drill").resolve()


@dataclass(frozen=True)
class ActiveDrill:
    pid: int
    pid_started: float  # psutil create_time: a recycled pid is not the drill
    run_dir: str  # "" until the run directory exists
    target: str
    state_dir: str  # the target's own state (what a clean-up heals)
    load_pgid: int | None = None
    load_started: float | None = None  # the generator's create_time: a recycled pgid is not ours
    mode: str = "run"  # "observe": a clean-up never touches the target

    def alive(self) -> bool:
        try:
            return abs(psutil.Process(self.pid).create_time() - self.pid_started) < 1.0
        except psutil.NoSuchProcess:
            return False


class Ledger:
    """The record of the drill running in this process (take it before touching the target)."""

    def __init__(self, root: Path, target: str, target_state: Path | str | None, mode: str = "run") -> None:
        self.path = root / LEDGER
        me = psutil.Process()
        self.entry = ActiveDrill(me.pid, me.create_time(), "", target, str(target_state or root), mode=mode)

    def open(self) -> Ledger:
        """Take the record, atomically (flock on the state directory): refuses while another drill
        lives, or while a dead one's record waits for its clean-up (``clean_orphan`` first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the state directory itself is the lock: no lock file is left behind
        lock = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            other = read(self.path)
            if other is not None and other.pid != self.entry.pid:
                if other.alive():
                    raise EnvironmentFailure(f"another drill (pid {other.pid}, {other.run_dir or 'starting'}) is "
                                             f"running on this state directory: wait for it or stop it "
                                             f"(kill -INT {other.pid})")  # fmt: skip
                raise EnvironmentFailure(f"a crashed drill's record is still in {self.path}: its clean-up failed; "
                                         "see the messages above, fix the target and remove the file")  # fmt: skip
            self._write()
        finally:
            os.close(lock)  # closing releases the lock
        return self

    def update(self, **changes: Any) -> None:
        self.entry = ActiveDrill(**{**asdict(self.entry), **changes})
        self._write()

    def note_load(self, pid: int) -> None:
        try:
            started = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            started = None
        self.update(load_pgid=pid, load_started=started)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps(asdict(self.entry), indent=2))

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
    """SIGKILL the crashed drill's load generator (its own process group), if it still runs and is
    still the process the record names (same create time: a recycled pid is left alone)."""
    if entry.load_pgid is None:
        return False
    try:
        leader = psutil.Process(entry.load_pgid)
        if entry.load_started is not None and abs(leader.create_time() - entry.load_started) > 1.0:
            return False
    except psutil.NoSuchProcess:
        pass  # the leader is gone; while any of its workers lives, the group id is still theirs
    try:
        os.killpg(entry.load_pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError as err:
        log.warning("cannot stop the orphaned load generator (pgid %s): %s", entry.load_pgid, err)
        return False
    return True


def forget(entry: ActiveDrill) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(entry.state_dir) / LEDGER).unlink()
