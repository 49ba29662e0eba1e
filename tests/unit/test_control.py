"""The drillbit control: fault timing and landing, as chaostoolkit-lib calls it, into events.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drillbit import control
from drillbit.core.events import faults_from_events, first_fault, read_events


def _activity(name: str, func: str, **arguments: object) -> dict[str, Any]:
    provider = {"type": "python", "module": "drillbit.faults", "func": func, "arguments": arguments}
    return {"type": "action", "name": name, "provider": provider}


KILL = _activity("kill-one", "kill_replicas", count=1)
RESTORE = _activity("restore-a", "restore_region", region="a")
OTHER = {"type": "probe", "name": "pods", "provider": {"type": "python", "module": "chaosk8s.pod.probes", "func": "x"}}


def _run(path: Path, activity: dict[str, Any], state: dict[str, Any], secrets: dict[str, Any] | None = None) -> None:
    control.before_activity_control(context=activity, events_path=str(path), secrets=secrets)
    control.after_activity_control(context=activity, state=state, events_path=str(path), secrets=secrets)


def test_a_fault_that_landed_is_timed_and_marks_the_fault_phase(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _run(path, KILL, {"status": "succeeded", "output": {"landed": True, "killed": [{"pid": 7}]}, "duration": 0.02})
    kinds = [e["kind"] for e in read_events(path)]
    assert kinds == ["phase", "fault.inject", "fault.result"]
    (fault,) = faults_from_events(read_events(path))
    assert fault.landed and fault.detail["killed"] == [{"pid": 7}] and fault.error is None


def test_only_the_first_fault_opens_the_fault_phase(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for _ in range(2):
        _run(path, KILL, {"status": "succeeded", "output": {"landed": True}})
    assert [e["kind"] for e in read_events(path)].count("phase") == 1


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ({"status": "succeeded", "output": {"landed": False}}, "did not confirm the fault took effect"),
        ({"status": "succeeded", "output": "done"}, "did not confirm the fault took effect"),
        ({"status": "failed", "exception": ["Traceback", "ConfigError: count: only 4 replicas are running\n"]},
         "ConfigError: count: only 4 replicas are running"),
    ],
    ids=["landed-false", "no-landed-field", "activity-failed"],
)
def test_a_fault_that_did_not_land_is_recorded_with_why(tmp_path: Path, state: dict[str, Any], error: str) -> None:
    path = tmp_path / "events.jsonl"
    _run(path, KILL, state)
    (fault,) = faults_from_events(read_events(path))
    assert not fault.landed
    assert error in (fault.error or "")


def test_a_revert_is_timed_against_the_faults_before_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _run(path, KILL, {"status": "succeeded", "output": {"landed": True}})
    _run(path, RESTORE, {"status": "succeeded", "output": {"landed": True}})
    events = read_events(path)
    (fault,) = faults_from_events(events)
    revert_at = next(e["t"] for e in events if e["kind"] == "fault.revert")
    assert fault.reverted_at == revert_at > fault.injected_at


def test_other_providers_are_on_the_timeline_but_not_judged(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    _run(path, OTHER, {"status": "succeeded", "output": 3})
    assert [e["kind"] for e in read_events(path)] == ["activity.start", "activity.end"]
    assert faults_from_events(read_events(path)) == []


def test_a_drill_that_ended_mid_fault_has_an_unlanded_fault(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    control.before_activity_control(context=KILL, events_path=str(path))
    (fault,) = faults_from_events(read_events(path))
    assert not fault.landed and "ended during the fault" in (fault.error or "")


def test_secrets_in_a_fault_result_never_reach_the_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARGET_API_TOKEN", "canary-0xDEADBEEF")
    path = tmp_path / "events.jsonl"
    state = {"status": "succeeded", "output": {"landed": True, "dsn": "postgresql://app:hunter2pw@db/x",
                                                "echo": "token canary-0xDEADBEEF and vault-s3cret"}}  # fmt: skip
    _run(path, KILL, state, secrets={"vault": {"password": "vault-s3cret"}})
    text = path.read_text()
    assert "canary-0xDEADBEEF" not in text and "vault-s3cret" not in text and "hunter2pw" not in text
    assert "***" in text


def test_the_fault_time_prefers_injected_then_marked_then_detected() -> None:
    detected = {"kind": "fault.detected", "t": 5.0}
    marked = {"kind": "mark", "mark": "fault", "t": 7.0}
    injected = {"kind": "fault.inject", "t": 9.0, "activity": "x"}
    note = {"kind": "mark", "mark": "note", "t": 1.0}
    assert first_fault([note, detected]) == (5.0, "detected")
    assert first_fault([note, detected, marked]) == (7.0, "marked")
    assert first_fault([detected, marked, injected]) == (9.0, "injected")
    assert first_fault([note]) == (None, None)


def test_faults_are_paired_with_their_results_by_a_unique_id_not_by_name(tmp_path: Path) -> None:
    """Two activities with one name: the first did not land, the second did; each keeps its own result
    (paired by name, a result could go to the wrong injection, or the second stay without one)."""
    path = tmp_path / "events.jsonl"
    first, second = _activity("kill", "kill_replicas", count=1), _activity("kill", "kill_replicas", count=2)
    control.before_activity_control(context=first, events_path=str(path))
    control.before_activity_control(context=second, events_path=str(path))  # both open at once (background)
    control.after_activity_control(context=second, state={"status": "succeeded", "output": {"landed": True}},
                                   events_path=str(path))  # fmt: skip
    control.after_activity_control(context=first, state={"status": "failed", "exception": ["Boom\n"]},
                                   events_path=str(path))  # fmt: skip
    events = read_events(path)
    ids = [e["fault_id"] for e in events if e["kind"] == "fault.inject"]
    assert len(set(ids)) == 2 and all(ids)
    a, b = faults_from_events(events)
    assert (a.id, b.id) == tuple(ids)
    assert a.landed is False and a.error == "Boom" and b.landed is True
