"""The drillbit Chaos Toolkit control: times every fault and checks that it landed.

The drill runner adds it to the experiment it runs (``controls:``, with the run's events file as
argument), so the journal shows it. For each activity provided by ``drillbit.faults``:

- before a fault (``drillbit.faults.FAULTS``): ``fault.inject`` with the activity's name, and the
  ``phase`` event ``fault`` before the first one;
- before a revert (``restore_region``): ``fault.revert``;
- after either: ``fault.result`` with ``landed`` (the driver's own verification; a failed
  activity or a result without ``landed: true`` has not landed) and the driver's facts.

Activities of other providers (plain chaosk8s/chaosaws, probes) are recorded as ``activity``
events, so the timeline shows them, but they are not judged. Secrets are redacted before writing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from drillbit.core.clock import Clock
from drillbit.core.events import EventLog, read_events
from drillbit.core.redact import Redactor, secret_values
from drillbit.faults import FAULTS, REVERTS
from drillbit.runs import DrillInterrupted

__all__ = [
    "after_activity_control",
    "after_hypothesis_control",
    "after_method_control",
    "after_rollback_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "before_rollback_control",
    "control_entry",
]

log = logging.getLogger(__name__)

MODULE = "drillbit.faults"
#: the unique id given to each fault or revert activity as it starts, by the activity dict's identity
#: (chaostoolkit passes the same dict before and after it): ``fault.result`` pairs with its
#: ``fault.inject`` by id, never by name (two activities may share a name)
_open_ids: dict[int, str] = {}


def control_entry(events_path: Path) -> dict[str, Any]:
    """The ``controls:`` entry the runner adds to an experiment."""
    return {
        "name": "drillbit",
        "provider": {"type": "python", "module": __name__, "arguments": {"events_path": str(events_path)}},
    }


def _kind(activity: dict[str, Any]) -> str | None:
    provider = activity.get("provider") or {}
    if provider.get("type") != "python" or provider.get("module") != MODULE:
        return None
    func = provider.get("func")
    return "fault" if func in FAULTS else "revert" if func in REVERTS else None


def _emit(events_path: str, secrets: dict[str, Any] | None, kind: str, t: float | None = None,
          **fields: Any) -> None:  # fmt: skip
    redact = Redactor(secret_values(secrets, os.environ))
    with EventLog(Path(events_path), Clock.from_env()) as log_:
        log_.emit(kind, t=t, **redact(fields))


def _faults_so_far(events_path: str) -> int:
    path = Path(events_path)
    return sum(1 for e in read_events(path) if e.get("kind") == "fault.inject") if path.exists() else 0


def before_activity_control(
    context: dict[str, Any], events_path: str, secrets: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    kind = _kind(context)
    name = context.get("name", "?")
    func = (context.get("provider") or {}).get("func")
    # chaostoolkit calls this before the activity's own "pauses: before": the fault comes after it
    at = Clock.from_env().now() + float((context.get("pauses") or {}).get("before") or 0)
    if kind is not None:
        _open_ids[id(context)] = fault_id = uuid.uuid4().hex[:12]
    if kind == "fault":
        if _faults_so_far(events_path) == 0:
            _emit(events_path, secrets, "phase", t=at, name="fault")
        _emit(events_path, secrets, "fault.inject", t=at, activity=name, fault_id=fault_id, action=f"{MODULE}.{func}",
              arguments=context["provider"].get("arguments", {}))  # fmt: skip
    elif kind == "revert":
        _emit(events_path, secrets, "fault.revert", activity=name, fault_id=fault_id, action=f"{MODULE}.{func}",
              arguments=context["provider"].get("arguments", {}))  # fmt: skip
    else:
        _emit(events_path, secrets, "activity.start", activity=name, type=context.get("type"))


def after_activity_control(
    context: dict[str, Any],
    state: dict[str, Any] | None,
    events_path: str,
    secrets: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    kind = _kind(context)
    run = state or {}
    status = run.get("status")
    output = run.get("output")
    if kind is None:
        _emit(events_path, secrets, "activity.end", activity=context.get("name", "?"), status=status)
        return
    landed = status == "succeeded" and isinstance(output, dict) and output.get("landed") is True
    error = None
    if status != "succeeded":
        exc = run.get("exception") or []
        error = (exc[-1].strip() if exc else None) or f"activity {status}"
    elif not landed:
        error = ("the target did not confirm the fault took effect (landed is not true)" if kind == "fault"
                 else "the target did not confirm it was restored (landed is not true)")  # fmt: skip
        why = output.get("reason") if isinstance(output, dict) else None
        if isinstance(why, str) and why:
            error = f"{error}: {why}"
    _emit(events_path, secrets, "fault.result", activity=context.get("name", "?"), role=kind, status=status,
          fault_id=_open_ids.pop(id(context), None),
          landed=landed, error=error, duration_s=run.get("duration"),
          output=output if isinstance(output, dict) else {"value": output})  # fmt: skip
    if error:
        log.warning("%s %r did not land: %s", kind, context.get("name"), Redactor(secret_values(secrets))(error))


def before_method_control(context: dict[str, Any], events_path: str, **kwargs: Any) -> None:
    _emit(events_path, None, "method.start")


def after_method_control(context: dict[str, Any], events_path: str, **kwargs: Any) -> None:
    _emit(events_path, None, "method.end")


def _signals(events_path: str, *, interrupt: bool) -> None:
    """Take SIGINT/SIGTERM back from chaostoolkit (its SIGTERM handler raises an exception that an
    activity swallows as a mere failure, and the next fault is injected anyway). Each signal is a
    ``signal`` event; during the method it also interrupts (a KeyboardInterrupt, which chaostoolkit
    answers with the rollbacks); during the rollbacks it is only recorded, so they all run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        _emit(events_path, None, "signal", signal=name, during="method" if interrupt else "rollbacks")
        if interrupt:
            raise DrillInterrupted(f"{name} during the experiment")
        log.warning("%s during the rollbacks: recorded; the rollbacks finish first", name)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)


def before_experiment_control(context: dict[str, Any], events_path: str, **kwargs: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        _signals(events_path, interrupt=True)


def before_rollback_control(context: dict[str, Any], events_path: str, **kwargs: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        _signals(events_path, interrupt=False)
    _emit(events_path, None, "rollbacks.start")


def after_rollback_control(context: dict[str, Any], events_path: str, **kwargs: Any) -> None:
    _emit(events_path, None, "rollbacks.end")


def after_hypothesis_control(
    context: dict[str, Any], state: dict[str, Any] | None, events_path: str, **kwargs: Any
) -> None:
    met = (state or {}).get("steady_state_met")
    _emit(events_path, None, "hypothesis", title=context.get("title"), met=met)
