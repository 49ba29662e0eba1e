"""CPU samples of the generator processes: how much of a core each used, and how much it wanted.

``cpu`` is psutil's percent of one core. ``busy`` adds the time the process's main thread (the
gevent loop: Locust does its work there) was runnable but waiting for a CPU, from Linux's
``/proc/<pid>/schedstat``: a generator squeezed by other processes on a shared box can use only
60 % of a core and still be starved; its busy figure is then near 100 %. Where schedstat is
unavailable, busy is the cpu figure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

__all__ = ["CpuSample", "CpuSampler", "busiest"]


@dataclass(frozen=True)
class CpuSample:
    t: float  # end of the interval (epoch s)
    cpu_percent: float
    busy_percent: float
    interval: float

    def row(self) -> list[float]:
        return [self.t, self.cpu_percent, self.busy_percent]


def _schedstat_ns(pid: int) -> int | None:
    """Nanoseconds the main thread ran plus waited on a run queue (None: not available)."""
    try:
        run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(run) + int(wait)
    except (OSError, ValueError):
        return None


class CpuSampler:
    """Samples a process and its descendants every ``interval`` seconds on a thread of its own."""

    def __init__(self, pid: int, now: Callable[[], float], interval: float = 1.0) -> None:
        self.pid, self.now, self.interval = pid, now, interval
        self.samples: dict[int, list[CpuSample]] = {}
        self._members: dict[int, psutil.Process] = {}
        self._last: dict[int, tuple[float, int | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="generator-cpu", daemon=True)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def family(self) -> list[psutil.Process]:
        """The process and its descendants now (the same Process objects each time: psutil measures
        CPU between calls on one object), remembered for ``members``."""
        try:
            root = psutil.Process(self.pid)
            now = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        with self._lock:
            return [self._members.setdefault(p.pid, p) for p in now]

    def members(self) -> list[psutil.Process]:
        """Every process of the family ever seen (workers can outlive their master)."""
        with self._lock:
            return list(self._members.values())

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        for p in self.family():
            t = self.now()
            try:
                cpu = p.cpu_percent(None)  # the first call on a process only primes it
            except psutil.NoSuchProcess:
                continue
            ns = _schedstat_ns(p.pid)
            last = self._last.get(p.pid)
            self._last[p.pid] = (t, ns)
            if last is None:
                continue
            dt = t - last[0]
            if dt <= 0:
                continue
            busy = (ns - last[1]) / 1e9 / dt * 100 if ns is not None and last[1] is not None else cpu
            self.samples.setdefault(p.pid, []).append(CpuSample(t, cpu, max(busy, cpu), dt))

    def rows(self) -> dict[str, list[list[float]]]:
        return {str(pid): [s.row() for s in series] for pid, series in self.samples.items()}


def busiest(samples: dict[int, list[CpuSample]], window: tuple[float, float] | None = None) -> tuple[float, float]:
    """(busy, cpu) medians of the busiest process over the samples whose interval lies within ``window``.

    Without a window (or no sample inside it) every sample counts.
    """
    best = (0.0, 0.0)
    for series in samples.values():
        inside = [s for s in series if window is None or (s.t - s.interval >= window[0] - 0.05 and s.t <= window[1])]
        use = inside or series
        if use:
            busy = float(np.median([s.busy_percent for s in use]))
            cpu = float(np.median([s.cpu_percent for s in use]))
            best = max(best, (busy, cpu))
    return best
