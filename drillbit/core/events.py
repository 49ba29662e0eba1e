"""events.jsonl: the drill's timeline (phases, fault inject/revert, rollbacks), one JSON object a line.

Every event carries ``t`` (epoch seconds from the drill's ``Clock``) and ``kind``; lines are
flushed as they are written, so an interrupted drill keeps its timeline.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any, TextIO

from drillbit.core.clock import Clock, to_iso
from drillbit.core.rundir import EVENTS
from drillbit.core.safeio import open_regular

__all__ = ["EventLog", "fault_time", "first_event", "read_events"]


class EventLog:
    """Append-only writer; safe to share between threads."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._file: TextIO = path.open("a", encoding="utf-8")

    def emit(self, kind: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
        at = self.clock.now() if t is None else t
        event = {"t": at, "at": to_iso(at), "kind": kind, **fields}
        line = json.dumps(event, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event in the file (a torn last line from a crash is skipped). A regular file
    only: a FIFO or a symlink in its place is ``drillbit.core.safeio.NotRegularFile``, never waited on."""

    events = []
    with open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError):  # a torn line, or nested beyond reading
                continue
    return events


def first_event(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("kind") == kind), None)


def fault_time(run_dir: Path, fault_at: float | None = None) -> float:
    """``fault_at`` if given, else the time of the run's first ``fault.inject`` event."""
    if fault_at is not None:
        return fault_at

    path = Path(run_dir) / EVENTS
    event = first_event(read_events(path), "fault.inject") if path.exists() else None
    if event is None:
        raise ValueError(f"no fault.inject event in {path}: pass fault_at")
    return float(event["t"])
