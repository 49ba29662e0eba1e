"""events.jsonl: written with the drill clock, read back whole, robust to a torn last line."""

from pathlib import Path

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog, first_event, read_events


def test_events_round_trip_with_clock_times_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, Clock()) as log:
        a = log.emit("phase", name="baseline")
        b = log.emit("fault.inject", action="kill_replicas", pids=[1, 2])
    events = read_events(path)
    assert [e["kind"] for e in events] == ["phase", "fault.inject"]
    assert events[1]["pids"] == [1, 2] and a["t"] <= b["t"]
    assert first_event(events, "fault.inject") == events[1]
    assert first_event(events, "fault.revert") is None


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, Clock()) as log:
        log.emit("phase", name="fault")
    with path.open("a") as f:
        f.write('{"t": 1, "kind": "fault.rev')
    assert [e["kind"] for e in read_events(path)] == ["phase"]
