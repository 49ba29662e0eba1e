"""One clock for a drill: monotonic (immune to NTP steps) and mapped to UTC epoch seconds.

Every timestamp drillbit records (requests, samples, fault events) comes from ``Clock.now()``:
the monotonic clock, offset once by an anchor taken at start-up, so intervals between events are
exact and absolute times are UTC.

One anchor per run: the drill takes it once and hands it to every process of the run (the
chaostoolkit control, the samplers, Locust and its workers, a spike generator) through the
environment (``DRILL_CLOCK``: wall anchor and monotonic anchor; the monotonic clock is one per
host), and each of them reads it with ``Clock.from_env()``. No component anchors its own, so a
wall-clock step during a drill cannot shift the fault against the samples.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["CLOCK_ENV", "Clock", "installed", "to_iso"]

#: the run's clock anchor, handed to every process of the run: "<wall anchor>:<monotonic anchor>"
CLOCK_ENV = "DRILL_CLOCK"


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

    def to_env(self) -> dict[str, str]:
        return {CLOCK_ENV: f"{self.wall_anchor!r}:{self.mono_anchor!r}"}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Clock:
        """The run's clock handed down in ``DRILL_CLOCK``; a new one only outside a run (plain
        ``locust -f``). A malformed value raises: a process must never quietly anchor its own."""
        value = (os.environ if environ is None else environ).get(CLOCK_ENV)
        if not value:
            return cls()
        try:
            wall, mono = (float(x) for x in value.split(":"))
        except ValueError:
            raise ValueError(f"{CLOCK_ENV}={value!r}: expected <wall anchor>:<monotonic anchor>") from None
        return cls(wall_anchor=wall, mono_anchor=mono)


@contextlib.contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    """Hand ``clock`` to this process and every process it starts (``DRILL_CLOCK``) for the block."""
    before = os.environ.get(CLOCK_ENV)
    os.environ.update(clock.to_env())
    try:
        yield clock
    finally:
        if before is None:
            os.environ.pop(CLOCK_ENV, None)
        else:
            os.environ[CLOCK_ENV] = before


def to_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
