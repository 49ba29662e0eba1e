"""One clock for a drill: monotonic (immune to NTP steps) and mapped to UTC epoch seconds.

Every timestamp drillbit records (requests, samples, fault events) comes from ``Clock.now()``:
the monotonic clock, offset once by an anchor taken at start-up, so intervals between events are
exact and absolute times are UTC. Processes anchor independently; the cross-process error is
the anchor's own (microseconds on one host).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Clock", "to_iso"]


@dataclass(frozen=True)
class Clock:
    """``now()`` = wall-clock anchor + monotonic time elapsed since the anchor."""

    wall_anchor: float = field(default_factory=time.time)
    mono_anchor: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return self.wall_anchor + (time.monotonic() - self.mono_anchor)

    def from_monotonic(self, mono: float) -> float:
        return self.wall_anchor + (mono - self.mono_anchor)

    def to_monotonic(self, epoch: float) -> float:
        return self.mono_anchor + (epoch - self.wall_anchor)


def to_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
