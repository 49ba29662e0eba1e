"""The spike's own requests: did the extra load reach the target, and how was it served?

``drillbit.faults.spike_load`` runs a second open-model generator on top of the drill's load and
records every request under ``<run dir>/spike/`` (the ``REQUEST_SCHEMA`` records). The spike
*lands* only when the target answered (any status: a 503 is an answer, and is judged by the
spike's error-rate SLA) at least ``LANDED_SHARE`` of the intended extra rate over the spike's
duration: requests sent into a refused socket or left unanswered did not load the target.
Its requests are analysed like the main load's (``drillbit.probes.latency``: per phase, failures in the
percentiles, error rate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drillbit.core.measurements import SpikeDelivery, SpikeMeasurement
from drillbit.probes.latency import analyze_latency, load_requests

__all__ = ["LANDED_SHARE", "SPIKE_DIR", "analyze_spike", "spike_delivery"]

SPIKE_DIR = "spike"
#: the spike lands when at least this share of its intended extra rate was answered
LANDED_SHARE = 0.95


def spike_delivery(records: Path, rate: float, duration: float) -> SpikeDelivery:
    """How much of ``rate`` req/s for ``duration`` s the target answered (records: a spike directory)."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be > 0")
    r = load_requests(records)
    answered = r.status > 0
    rps = float(answered.sum()) / duration
    return SpikeDelivery(intended_rps=rate, duration_s=duration, sent=int((~np.isnan(r.start)).sum()),
                         answered=int(answered.sum()), failed_answers=int((answered & r.error).sum()),
                         answered_rps=rps, landed=rps >= LANDED_SHARE * rate)  # fmt: skip


def analyze_spike(run_dir: Path, phases: dict[str, tuple[float, float]], rate: float | None,
                  duration: float | None) -> SpikeMeasurement:  # fmt: skip
    """Per-phase latency and errors of the spike's requests, and its delivery when its rate is known."""
    records = run_dir / SPIKE_DIR
    delivery = spike_delivery(records, rate, duration) if rate is not None and duration is not None else None
    return SpikeMeasurement(phases=analyze_latency(load_requests(records), phases), delivery=delivery)
