"""events.jsonl: the drill's timeline (phases, fault inject/revert, rollbacks), one JSON object a line.

Every event carries ``t`` (epoch seconds from the drill's ``Clock``) and ``kind``; lines are
flushed as they are written, so an interrupted drill keeps its timeline. The faults and their
spans (:func:`faults_from_events`) and the fault time (:func:`first_fault`) are worked out here
only: ``drillbit.analysis`` stores them in measurements.json, a report reads them from there.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any, TextIO

from drillbit.core.clock import Clock, to_iso
from drillbit.core.results import Fault
from drillbit.core.rundir import EVENTS
from drillbit.core.safeio import open_regular

__all__ = ["EventLog", "fault_time", "faults_from_events", "first_event", "first_fault", "read_events"]


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


def faults_from_events(events: list[dict[str, Any]]) -> list[Fault]:
    """Each injected fault, with its result and (for reversible faults) when it was reverted.

    A result pairs with its injection by ``fault_id`` (unique per injection); runs recorded before
    ids fall back to the activity's name.
    """
    faults: list[Fault] = []
    by_id: dict[str, int] = {}
    by_name: dict[str, int] = {}
    revert_at: float | None = None
    for e in events:
        kind = e.get("kind")
        if kind == "fault.inject":
            i = len(faults)
            if e.get("fault_id"):
                by_id[str(e["fault_id"])] = i
            else:
                by_name[e["activity"]] = i
            faults.append(Fault(activity=e["activity"], id=e.get("fault_id"), action=e.get("action", "?"),
                                injected_at=float(e["t"]), landed=False,
                                error="no result recorded: the drill ended during the fault"))  # fmt: skip
        elif kind == "fault.revert":
            revert_at = float(e["t"])
        elif kind == "fault.result" and e.get("role") == "fault":
            i = by_id.pop(str(e["fault_id"]), -1) if e.get("fault_id") else by_name.pop(e["activity"], -1)
            if i >= 0:
                result = {"landed": bool(e.get("landed")), "error": e.get("error"), "detail": e.get("output") or {}}
                faults[i] = faults[i].model_copy(update=result)
        elif kind == "fault.result" and e.get("role") == "revert" and revert_at is not None:
            for i, f in enumerate(faults):
                if f.reverted_at is None and f.injected_at <= revert_at:
                    faults[i] = f.model_copy(update={"reverted_at": revert_at})
    return faults


def first_fault(events: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The fault time and where it came from: an injected fault, else an operator's ``mark`` of
    kind fault, else the fault ``drill observe`` detected from the first failed probe."""
    for source, match in (
        ("injected", lambda e: e.get("kind") == "fault.inject"),
        ("marked", lambda e: e.get("kind") == "mark" and e.get("mark") == "fault"),
        ("detected", lambda e: e.get("kind") == "fault.detected"),
    ):
        times = [float(e["t"]) for e in events if match(e)]
        if times:
            return min(times), source
    return None, None
