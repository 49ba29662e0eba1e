"""CPU samples of the generator processes: how much of a core each used, and how much it wanted.

``cpu`` is psutil's percent of one core. ``busy`` adds the time the process's main thread (the
gevent loop: Locust does its work there) was runnable but waiting for a CPU, from Linux's
``/proc/<pid>/schedstat``: a generator squeezed by other processes on a shared box can use only
60 % of a core and still be starved; its busy figure is then near 100 %. Where schedstat is
unavailable, busy is the cpu figure.

The sampler also reads each process's resident memory (RSS) at every tick, the first included: a
soak's memory drift is judged from these (``drillbit.probes.drift``). ``harness_table`` turns a
sampler's figures into rows of ``drillbit.core.rundir.HARNESS_SCHEMA``. ``busiest_process`` names the
busiest generator process, local or remote (a remote worker's figures come from the worker itself:
``drillbit.load.transit``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

from drillbit.core.rundir import HARNESS_SCHEMA

__all__ = ["Busiest", "CpuSample", "CpuSampler", "MemorySample", "busiest", "busiest_process", "harness_table",
           "schedstat_ns"]  # fmt: skip


@dataclass(frozen=True)
class CpuSample:
    t: float  # end of the interval (epoch s)
    cpu_percent: float
    busy_percent: float
    interval: float

    def row(self) -> list[float]:
        return [self.t, self.cpu_percent, self.busy_percent]


@dataclass(frozen=True)
class MemorySample:
    t: float  # when read (epoch s)
    rss_bytes: int  # resident set size


def schedstat_ns(pid: int) -> int | None:
    """Nanoseconds the main thread ran plus waited on a run queue (None: not available)."""
    try:
        run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(run) + int(wait)
    except (OSError, ValueError):
        return None


class CpuSampler:
    """Samples a process and its descendants (``descendants=False``: the process alone) every
    ``interval`` seconds on a thread of its own: CPU into ``samples``, resident memory into ``memory``."""

    def __init__(self, pid: int, now: Callable[[], float], interval: float = 1.0, *, descendants: bool = True) -> None:
        self.pid, self.now, self.interval, self.descendants = pid, now, interval, descendants
        self.samples: dict[int, list[CpuSample]] = {}
        self.memory: dict[int, list[MemorySample]] = {}
        self._members: dict[int, psutil.Process] = {}
        self._last: dict[int, tuple[float, int | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cpu-sampler-{pid}", daemon=True)

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
            now = [root, *root.children(recursive=True)] if self.descendants else [root]
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
                rss = int(p.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
            self.memory.setdefault(p.pid, []).append(MemorySample(t, rss))
            ns = schedstat_ns(p.pid)
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


@dataclass(frozen=True)
class Busiest:
    """The busiest generator process: its key in the samples (a pid, or a remote worker's name) and medians."""

    process: Hashable | None  # None: no sample at all
    busy_percent: float
    cpu_percent: float


def busiest_process(samples: Mapping[Hashable, list[CpuSample]],
                    window: tuple[float, float] | None = None) -> Busiest:  # fmt: skip
    """The process whose median busy share (then CPU share) is highest over the samples whose interval lies
    within ``window``. Without a window (or no sample inside it) every sample of a process counts."""
    best = Busiest(None, 0.0, 0.0)
    for key, series in samples.items():
        inside = [s for s in series if window is None or (s.t - s.interval >= window[0] - 0.05 and s.t <= window[1])]
        use = inside or series
        if use:
            busy = float(np.median([s.busy_percent for s in use]))
            cpu = float(np.median([s.cpu_percent for s in use]))
            if best.process is None or (busy, cpu) > (best.busy_percent, best.cpu_percent):
                best = Busiest(key, busy, cpu)
    return best


def busiest(samples: Mapping[Hashable, list[CpuSample]],
            window: tuple[float, float] | None = None) -> tuple[float, float]:  # fmt: skip
    """(busy, cpu) medians of the busiest process over the samples whose interval lies within ``window``.

    Without a window (or no sample inside it) every sample counts.
    """
    b = busiest_process(samples, window)
    return b.busy_percent, b.cpu_percent


def harness_table(sampler: CpuSampler, role: Callable[[int], str], host: str) -> pa.Table:
    """A sampler's figures as ``HARNESS_SCHEMA`` rows: one per memory reading, with the CPU figures of the
    interval ending then (NaN on a process's first reading); ``role(pid)`` names each process's role."""
    cols: dict[str, list[object]] = {name: [] for name in HARNESS_SCHEMA.names}
    for pid, series in sorted(sampler.memory.items()):
        cpu = {s.t: s for s in sampler.samples.get(pid, [])}
        kind = role(pid)
        for m in series:
            c = cpu.get(m.t)
            for name, value in (("t", m.t), ("role", kind), ("worker", None), ("pid", pid), ("host", host),
                                ("remote", False), ("rss_bytes", m.rss_bytes),
                                ("cpu_percent", c.cpu_percent if c else math.nan),
                                ("busy_percent", c.busy_percent if c else math.nan)):  # fmt: skip
                cols[name].append(value)
    return pa.table(cols, schema=HARNESS_SCHEMA)
