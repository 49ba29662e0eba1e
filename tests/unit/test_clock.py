"""One clock per run: the anchor handed to every process (DRILL_CLOCK), none anchoring its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drillbit import control
from drillbit.core.clock import CLOCK_ENV, Clock, installed
from drillbit.core.events import read_events

#: a run whose anchor is an hour off the wall clock now: as if the wall clock stepped back since it began
STEPPED = 3600.0


def _stepped() -> Clock:
    return Clock(wall_anchor=time.time() + STEPPED, mono_anchor=time.monotonic())


def test_the_anchor_round_trips_through_the_environment_and_a_bad_one_raises() -> None:
    clock = _stepped()
    assert Clock.from_env(clock.to_env()) == clock
    with pytest.raises(ValueError, match=CLOCK_ENV):
        Clock.from_env({CLOCK_ENV: "yesterday"})
    assert abs(Clock.from_env({}).now() - time.time()) < 1.0  # outside a run: a clock of its own


def test_a_child_process_reads_the_runs_clock_not_the_wall_clock() -> None:
    code = "from drillbit.core.clock import Clock; print(Clock.from_env().now())"
    with installed(_stepped()) as clock:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
        parent = clock.now()
    child = float(out.stdout)
    assert abs(child - parent) < 30.0 and abs(child - time.time() - STEPPED) < 30.0  # an hour off, like the run's
    assert CLOCK_ENV not in os.environ  # restored after the run


def test_the_control_times_faults_on_the_runs_clock(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    activity = {"type": "action", "name": "kill", "provider": {"type": "python", "module": "drillbit.faults",
                                                                "func": "kill_replicas", "arguments": {}}}  # fmt: skip
    with installed(_stepped()) as clock:
        control.before_activity_control(context=activity, events_path=str(path))
        now = clock.now()
    inject = next(e for e in read_events(path) if e["kind"] == "fault.inject")
    assert abs(inject["t"] - now) < 5.0  # on the run's clock (an hour from the wall clock), not a fresh anchor
