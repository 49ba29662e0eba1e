"""What a sampler covered, and whether that spans the window a verdict needs.

A number measured from samples that stop early, skip a stretch or come from a sampler that died
proves nothing about the time it did not see: an availability probe that ended a second after the
fault gives RTO 0 for an outage it never saw. Each sampler's coverage is its first and last
sample, the gaps between consecutive samples longer than ``max_gap_s`` (3 sampling intervals,
plus for a serial writer the longest one write may take), its skipped ticks, the times its probes
raised, and whether its thread died (``drillbit.probes.samplers``: recorded in the sidecar).
``Coverage.problem(start, end)`` says why the samples do not span ``[start, end]``, or None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drillbit.core.clock import to_iso
from drillbit.core.measurements import SamplerCoverage

__all__ = ["GAP_INTERVALS", "Coverage", "coverage"]

#: a gap between samples longer than this many sampling intervals is a hole in the coverage
GAP_INTERVALS = 3.0


class Coverage(SamplerCoverage):
    """A sampler's coverage: the fields of measurements.json's ``coverage`` entries (the model is
    defined once, in ``drillbit.core.measurements``), and whether they span a verdict's window."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def problem(self, start: float, end: float) -> str | None:
        """Why these samples do not cover ``[start, end]`` (epoch s), or None when they do."""
        name = f"the {self.sampler} sampler"

        def at(t: float) -> str:
            return f"{t - start:+.1f} s from the fault ({to_iso(t)})"

        if self.first_t is None or self.last_t is None:
            return f"{name} recorded no sample"
        if self.died_at is not None and self.died_at < end:
            return f"{name} died at {at(self.died_at)}: {self.died}"
        if self.first_t > start + self.max_gap_s:
            return f"{name} began only at {at(self.first_t)}"
        if self.last_t < end - self.max_gap_s:
            return f"{name} stopped at {at(self.last_t)}, before {at(end)}, which the verdict needs"
        holes = [(a, b) for a, b in self.gaps if b > start and a < end]
        if holes:
            a, b = max(holes, key=lambda g: g[1] - g[0])
            return (f"{name} has {len(holes)} gap(s) longer than {self.max_gap_s:.2f} s between the fault and "
                    f"{at(end)}; the longest {b - a:.2f} s at {at(a)}")  # fmt: skip
        raised = [t for t in self.probe_error_times if start <= t <= end]
        if raised:
            return f"{len(raised)} probe(s) of {name} raised between the fault and {at(end)} (first at {at(raised[0])})"
        return None


def coverage(sampler: str, times: np.ndarray, meta: dict[str, Any], *, extra_gap_s: float = 0.0) -> Coverage:
    """The coverage of samples taken at ``times`` (epoch s) by ``sampler``, whose sidecar is ``meta``.

    ``extra_gap_s``: how long one probe may legitimately hold a serial sampler (its next probe
    waits for it), added to the gap threshold.
    """
    t = np.sort(times[~np.isnan(times)]) if times.size else times
    interval = meta.get("interval_s")
    if interval is None:
        interval = float(np.median(np.diff(t))) if t.size > 1 else math.nan
    max_gap = GAP_INTERVALS * float(interval) + extra_gap_s
    gaps: list[tuple[float, float]] = []
    if t.size > 1 and math.isfinite(max_gap):
        d = np.diff(t)
        gaps = [(float(t[i]), float(t[i + 1])) for i in np.flatnonzero(d > max_gap)]
    return Coverage(
        sampler=sampler, interval_s=float(interval), max_gap_s=max_gap, samples=int(t.size),
        first_t=float(t[0]) if t.size else None, last_t=float(t[-1]) if t.size else None, gaps=gaps,
        skipped_ticks=meta.get("skipped_ticks"), probe_errors=meta.get("probe_errors"),
        probe_error_times=[float(x) for x in meta.get("probe_error_times") or []],
        died=meta.get("died"), died_at=meta.get("died_at"),
    )  # fmt: skip
