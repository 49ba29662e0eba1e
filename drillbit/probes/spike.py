"""The spike's own requests: did the extra load reach the target, and how was it served?

``drillbit.faults.spike_load`` runs a second open-model generator on top of the drill's load and
records every request under ``<run dir>/spike/`` (the ``REQUEST_SCHEMA`` records). The spike
*lands* only when the target answered (any status: a 503 is an answer, and is judged by the
spike's error-rate SLA) at least ``LANDED_SHARE`` of the requests the spike's schedule drew:
requests sent into a refused socket or left unanswered did not load the target. The share is of
the schedule's own draws, not of rate x duration: a Poisson schedule of 1,200 expected arrivals
draws 1,200 +- 35, so 95 % of the expectation is only 1.7 sigma below it and would call a healthy
spike unlanded one run in 25. A schedule cut short (fewer draws than a Poisson count falls to once
in ~30,000, 4 sigma) does not land either: the extra load was never asked for.
Its requests are analysed like the main load's (``drillbit.probes.latency``: per phase, failures in the
percentiles, error rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from drillbit.core.measurements import SpikeDelivery, SpikeMeasurement
from drillbit.probes.latency import analyze_latency, load_requests

__all__ = ["LANDED_SHARE", "SPIKE_DIR", "analyze_spike", "spike_delivery"]

SPIKE_DIR = "spike"
#: the spike lands when at least this share of its scheduled requests was answered
LANDED_SHARE = 0.95
#: a schedule with fewer draws than rate x duration - this many sigma (Poisson) was cut short
SHORT_SCHEDULE_SIGMA = 4.0


def spike_delivery(records: Path, rate: float, duration: float) -> SpikeDelivery:
    """How much of ``rate`` req/s for ``duration`` s the target answered (records: a spike directory)."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be > 0")
    r = load_requests(records)
    answered = r.status > 0
    scheduled = len(r.intended)  # every draw is recorded, sent or not (recorded == sent + not_sent)
    expected = rate * duration
    short = scheduled < expected - SHORT_SCHEDULE_SIGMA * math.sqrt(expected)
    n_answered = int(answered.sum())
    return SpikeDelivery(intended_rps=rate, duration_s=duration, scheduled=scheduled,
                         sent=int((~np.isnan(r.start)).sum()), answered=n_answered,
                         failed_answers=int((answered & r.error).sum()), answered_rps=n_answered / duration,
                         landed=not short and n_answered >= LANDED_SHARE * scheduled)  # fmt: skip


def analyze_spike(run_dir: Path, phases: dict[str, tuple[float, float]], rate: float | None,
                  duration: float | None) -> SpikeMeasurement:  # fmt: skip
    """Per-phase latency and errors of the spike's requests, and its delivery when its rate is known."""
    records = run_dir / SPIKE_DIR
    delivery = spike_delivery(records, rate, duration) if rate is not None and duration is not None else None
    return SpikeMeasurement(phases=analyze_latency(load_requests(records), phases), delivery=delivery)
