"""What an aws target is sampled for during a drill, and its stop conditions.

The target is duck-typed (``AwsSource``: ``drillbit.targets.aws.AwsTarget``), as the replicas
sampler's is.

- ``AwsSampler`` (samples/aws.parquet), every ``sample_interval_s``: the target's ``readings()``:
  the Aurora writer (and the global database's), the replica lag (CloudWatch ``AWS/RDS``), the
  application tier's instances per AZ, the Route 53 health check's status and the DNS answer. One
  row per reading (``source``, ``key``, ``value``, ``number``); a reading that cannot be taken is no
  row and the tick raises (counted as a probe error: a gap, never a stale value).
- ``AlarmWatch`` (samples/alarms.parquet), every ``alarm_poll_s``: the state of each stop-condition
  alarm. The first one seen in ALARM is a ``stop_condition`` event in events.jsonl (which alarm, when
  CloudWatch changed its state, why, when drillbit saw it), then ``on_fire`` is called: the runner
  interrupts the drill through its signal path (rollbacks, heal, status ``stopped``). An alarm
  CloudWatch does not have refuses the start: it could never stop anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from drillbit.core.clock import Clock
from drillbit.core.errors import EnvironmentFailure
from drillbit.core.events import EventLog
from drillbit.core.rundir import EVENTS
from drillbit.probes.samplers import ParquetSink, Sampler, TickSampler

__all__ = ["ALARMS", "AWS_SAMPLES", "SCHEMA", "STOP_CONDITION", "AlarmWatch", "AwsSampler", "AwsSource", "for_target"]

log = logging.getLogger(__name__)

AWS_SAMPLES = "samples/aws.parquet"
ALARMS = "samples/alarms.parquet"
STOP_CONDITION = "stop_condition"  # the events.jsonl kind

SCHEMA = pa.schema([("t", pa.float64()), ("source", pa.string()), ("key", pa.string()), ("value", pa.string()),
                    ("number", pa.float64())])  # fmt: skip


@runtime_checkable
class AwsSource(Protocol):
    name: str
    kind: str

    def readings(self) -> tuple[list[tuple[str, str, str, float | None]], list[str]]:
        """(rows of source, key, value, number; why each reading that could not be taken failed)."""
        ...

    def alarm_states(self) -> dict[str, dict[str, Any]]:
        """Each stop-condition alarm CloudWatch has: ``state``, ``changed_at`` (epoch s), ``reason``."""
        ...

    def sampling(self) -> dict[str, float]:
        """``sample_interval_s`` and ``alarm_poll_s``."""
        ...

    def alarm_names(self) -> list[str]:
        """The stop-condition alarms ([]: none)."""
        ...


class AwsSampler(Sampler):
    def __init__(self, target: AwsSource, run_dir: Path, *, clock: Clock, interval: float) -> None:
        self.target, self.clock, self.interval = target, clock, interval
        self.path = run_dir / AWS_SAMPLES
        self.sink = ParquetSink(self.path, SCHEMA)
        super().__init__()
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="aws")  # fmt: skip

    def _probe(self, tick: float) -> None:
        rows, failed = self.target.readings()
        t = self.clock.now()
        for source, key, value, number in rows:
            self.sink.add({"t": t, "source": source, "key": key, "value": value, "number": number})
        if failed:
            raise EnvironmentFailure("aws sampler: " + "; ".join(failed))

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "aws", "target": self.target.name, "interval_s": self.interval, **self._ticks.stats()}


class AlarmWatch(Sampler):
    def __init__(self, target: AwsSource, alarms: list[str], run_dir: Path, *, clock: Clock, interval: float,
                 on_fire: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.target, self.alarms, self.run_dir, self.clock = target, alarms, run_dir, clock
        self.interval, self.on_fire = interval, on_fire
        self.path = run_dir / ALARMS
        self.sink = ParquetSink(self.path, SCHEMA)
        self.fired: dict[str, Any] | None = None
        super().__init__()
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="alarms")  # fmt: skip

    def _prepare(self) -> None:
        missing = sorted(set(self.alarms) - set(self.target.alarm_states()))
        if missing:
            raise EnvironmentFailure(f"aws {self.target.name}: the stop-condition alarms {', '.join(missing)} do not "
                                     "exist in CloudWatch: create them or fix alarms in drill.yaml")  # fmt: skip

    def _probe(self, tick: float) -> None:
        states = self.target.alarm_states()
        t = self.clock.now()
        for name in self.alarms:
            if name not in states:
                raise EnvironmentFailure(f"the stop-condition alarm {name} is gone from CloudWatch")
            state = str(states[name]["state"])
            self.sink.add({"t": t, "source": "alarm", "key": name, "value": state, "number": float(state == "ALARM")})
            if state == "ALARM" and self.fired is None:
                self._fire(name, states[name], t)

    def _fire(self, name: str, alarm: dict[str, Any], seen_at: float) -> None:
        self.fired = {"alarm": name, "state": "ALARM", "changed_at": alarm.get("changed_at"), "seen_at": seen_at,
                      "reason": alarm.get("reason"), "source": "cloudwatch"}  # fmt: skip
        with EventLog(self.run_dir / EVENTS, self.clock) as events:
            events.emit(STOP_CONDITION, t=seen_at, **self.fired)
        log.warning("stop condition: CloudWatch alarm %s is in ALARM: stopping the drill", name)
        if self.on_fire is not None:
            self.on_fire(name)

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "alarms", "alarms": self.alarms, "interval_s": self.interval, "fired": self.fired,
                **self._ticks.stats()}  # fmt: skip


def for_target(target: object, run_dir: Path, *, clock: Clock,
               on_stop: Callable[[str], None] | None = None) -> list[Sampler]:  # fmt: skip
    """The samplers of an aws target (its stop conditions first); [] for any other target."""
    if getattr(target, "kind", None) != "aws" or not isinstance(target, AwsSource):
        return []
    every = target.sampling()
    samplers: list[Sampler] = []
    alarms = list(target.alarm_names())
    if alarms:
        samplers.append(AlarmWatch(target, alarms, run_dir, clock=clock, interval=every["alarm_poll_s"],
                                   on_fire=on_stop))  # fmt: skip
    samplers.append(AwsSampler(target, run_dir, clock=clock, interval=every["sample_interval_s"]))
    return samplers
