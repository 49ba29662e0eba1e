"""Live progress of a drill: a rich panel on a terminal, plain lines otherwise (CI logs).

The numbers are the live view only (Locust's own rolling stats: uncorrected, for watching); the
verdicts come from the per-request records afterwards.
"""

from __future__ import annotations

import csv
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["LiveView", "Snapshot", "locust_now"]

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    phase: str = "starting"
    elapsed_s: float = 0.0
    rps: float | None = None
    p95_ms: float | None = None
    failures: int | None = None
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    availability: str | None = None  # e.g. "ok" / "FAILING"


def locust_now(history_csv: Path) -> tuple[float | None, float | None, int | None]:
    """(current rps, rolling p95 ms, total failures) from Locust's stats history, if written yet."""
    try:
        with history_csv.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except (OSError, csv.Error):
        return None, None, None
    if not rows:
        return None, None, None
    last = rows[-1]

    def num(key: str) -> float | None:
        try:
            return float(last.get(key) or "nan")
        except ValueError:
            return None

    failures = num("Total Failure Count")
    return num("Requests/s"), num("95%"), None if failures is None else int(failures)


def _replicas_text(replicas: dict[str, dict[str, int]]) -> str:
    return "  ".join(f"{r}: {c['ready']}/{c['desired']}" for r, c in sorted(replicas.items())) or "-"


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}{unit}"


class LiveView:
    """Polls ``sample()`` every ``interval`` s and shows it; ``event`` lines are printed as they come."""

    def __init__(self, title: str, sample: Callable[[], Snapshot], *, tty: bool | None = None,
                 interval: float = 1.0, plain_every: float = 10.0, out: TextIO | None = None) -> None:  # fmt: skip
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.title, self.sample, self.interval, self.plain_every = title, sample, interval, plain_every
        self.console = Console(file=self.out, force_terminal=self.tty, highlight=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self._live: Live | None = None
        self._last_plain = -1e9

    def _table(self, s: Snapshot) -> Table:
        t = Table(title=self.title, show_header=False, expand=False)
        rows = [("phase", s.phase), ("elapsed", f"{s.elapsed_s:.0f} s"), ("achieved", _fmt(s.rps, " req/s", 1)),
                ("p95 (live)", _fmt(s.p95_ms, " ms")), ("failed requests", _fmt(s.failures, "")),
                ("availability probe", s.availability or "-"), ("replicas", _replicas_text(s.replicas))]  # fmt: skip
        for k, v in rows:
            t.add_row(k, v)
        return t

    def _plain(self, s: Snapshot) -> str:
        return (f"[{s.elapsed_s:6.1f} s] {s.phase:<9} {_fmt(s.rps, ' req/s', 1)}  p95 {_fmt(s.p95_ms, ' ms')}  "
                f"failed {_fmt(s.failures, '')}  probe {s.availability or '-'}  replicas {_replicas_text(s.replicas)}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                snap = self.sample()
            except (OSError, ValueError, RuntimeError) as err:  # a torn stats file: skip this refresh
                log.debug("live view: %s", err)
                continue
            if self._live is not None:
                self._live.update(self._table(snap))
            elif snap.elapsed_s - self._last_plain >= self.plain_every:
                self._last_plain = snap.elapsed_s
                print(self._plain(snap), file=self.out, flush=True)

    def start(self) -> LiveView:
        if self.tty:
            self._live = Live(self._table(Snapshot()), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        self._thread.start()
        return self

    def event(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(message)
        else:
            print(message, file=self.out, flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._live is not None:
            self._live.stop()
            self._live = None
