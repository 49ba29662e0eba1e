"""What the aws target changed and has not undone yet, kept in its state directory.

A mark is written *before* the change it describes (the instances about to be stopped, the
subnets' original network ACLs, the health check's settings before it was forced unhealthy), so a
drill killed between the call and the record still leaves what ``heal`` needs, and a later
invocation (the next ``drill run``, ``drill env down``) restores exactly that. Undoing a mark is
idempotent; the mark goes once its change is undone.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

from drillbit.core.errors import EnvironmentFailure
from drillbit.core.safeio import write_text

__all__ = ["MARKS", "Marks"]

log = logging.getLogger(__name__)

MARKS = "faults.json"


class Marks:
    """The marks file of one target: a JSON list of ``{"id", "kind", ...}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise EnvironmentFailure(f"{self.path}: unreadable ({err}): undo the faults it names by hand, then "
                                     "remove it") from None  # fmt: skip
        if not isinstance(data, list) or not all(isinstance(m, dict) and "kind" in m for m in data):
            raise EnvironmentFailure(f"{self.path}: not a list of marks: undo the faults by hand, then remove it")
        return data

    def add(self, kind: str, **facts: Any) -> str:
        with self._lock:
            mark_id = uuid.uuid4().hex[:12]
            marks = [*self.load(), {"id": mark_id, "kind": kind, **facts}]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(marks, indent=2, sort_keys=True))
            return mark_id

    def update(self, mark_id: str, **facts: Any) -> None:
        with self._lock:
            marks = [{**m, **facts} if m.get("id") == mark_id else m for m in self.load()]
            write_text(self.path, json.dumps(marks, indent=2, sort_keys=True))

    def remove(self, mark_id: str) -> None:
        with self._lock:
            marks = [m for m in self.load() if m.get("id") != mark_id]
            if marks:
                write_text(self.path, json.dumps(marks, indent=2, sort_keys=True))
            else:
                self.path.unlink(missing_ok=True)
