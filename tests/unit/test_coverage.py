"""Sampler coverage: each way samples can fail to span the window a verdict needs, and the way they do."""

from __future__ import annotations

import numpy as np
import pytest

from drillbit.probes.coverage import coverage

T0 = 1_800_000_000.0
TIMES = T0 + np.arange(0, 60, 0.1)
META = {"interval_s": 0.1, "skipped_ticks": 0, "probe_errors": 0}


def test_samples_spanning_the_window_have_no_problem() -> None:
    cov = coverage("availability", TIMES, META)
    assert cov.problem(T0 + 10, T0 + 50) is None and cov.gaps == [] and cov.max_gap_s == pytest.approx(0.3)


def test_each_shortfall_is_named() -> None:
    late_start = coverage("availability", TIMES[TIMES >= T0 + 12], META).problem(T0 + 10, T0 + 50)
    assert late_start is not None and "began only at +2.0 s" in late_start
    raised = coverage("availability", TIMES, {**META, "probe_errors": 2, "probe_error_times": [T0 + 5, T0 + 20]})
    assert "1 probe(s) of the availability sampler raised" in (raised.problem(T0 + 10, T0 + 50) or "")
    assert raised.problem(T0 + 30, T0 + 50) is None  # outside the window: not this verdict's problem
    assert "recorded no sample" in (coverage("heartbeat", np.array([]), META).problem(T0, T0 + 1) or "")


def test_a_serial_writer_may_hold_its_slot_for_one_write() -> None:
    """The heartbeat writes one at a time: a gap as long as one write may take is not a hole."""
    times = np.concatenate([TIMES[TIMES < T0 + 20], TIMES[TIMES >= T0 + 22]])
    assert coverage("heartbeat", times, META, extra_gap_s=2.5).problem(T0 + 10, T0 + 50) is None
    hole = coverage("heartbeat", times, META).problem(T0 + 10, T0 + 50)
    assert hole is not None and "longest 2.10 s at +9.9 s" in hole
