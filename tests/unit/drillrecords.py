"""Run directories with a scripted truth, written the way a drill writes them, for verdict tests.

Each writer takes the ground truth as a function of time (is the service up at ``t``? how long
does a request take?) and records what drillbit's own samplers and load recorder would: real
Parquet in the ``drillbit.core.rundir`` schemas through ``drillbit.probes.samplers.ParquetSink``, sidecars through
``write_meta``, events through ``drillbit.core.events.EventLog``. ``judge`` then runs the real analysis
and verdicts over the directory, so a test compares a verdict with the truth it scripted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.analysis import analyze
from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.results import Measurements, VerdictSet
from drillbit.core.rundir import (
    AVAILABILITY,
    AVAILABILITY_SCHEMA,
    EVENTS,
    HEARTBEAT,
    HEARTBEAT_READBACK,
    HEARTBEAT_READBACK_SCHEMA,
    HEARTBEAT_SCHEMA,
    INTEGRITY,
    REPLICAS,
    REPLICAS_SCHEMA,
    REQUEST_SCHEMA,
    REQUESTS_DIR,
)
from drillbit.probes.samplers import ParquetSink, write_meta
from drillbit.sla import Sla, load_sla_file, slas_for
from drillbit.verdicts import evaluate

__all__ = ["T0", "Up", "availability", "events", "heartbeats", "judge", "replicas", "requests", "verdict_of"]

T0 = 1_800_000_000.0
Up = Callable[[float], bool]


def availability(run_dir: Path, up: Up, *, start: float, end: float, interval: float = 0.1,
                 meta: dict[str, Any] | None = None) -> None:  # fmt: skip
    """One probe every ``interval`` in [start, end): ok with 2 ms when ``up(t)``, else a fast 503."""
    sink = ParquetSink(run_dir / AVAILABILITY, AVAILABILITY_SCHEMA)
    for t in np.arange(start, end, interval):
        good = up(float(t))
        sink.add({"t": float(t), "ok": good, "latency": 0.002, "status": 200 if good else 503,
                  "error": None if good else "http"})  # fmt: skip
    sink.close()
    write_meta(run_dir / AVAILABILITY, {"sampler": "availability", "interval_s": interval, "timeout_s": 1.0,
                                        "skipped_ticks": 0, "probe_errors": 0, **(meta or {})})  # fmt: skip


def requests(run_dir: Path, *, start: float, end: float, rate: float, latency: Callable[[float], float],
             fails: Callable[[float], str | None] = lambda t: None, subdir: str = REQUESTS_DIR,
             answered: Callable[[float], bool] = lambda t: True) -> None:  # fmt: skip
    """Open-model records at ``rate``/s: ``latency(t)`` seconds each; ``fails(t)`` an error kind ("http": a
    503, "timeout": no answer) or None; ``answered(t)`` False: sent, never answered (a connection error)."""
    intended = np.arange(start, end, 1.0 / rate)
    kinds = [fails(float(t)) for t in intended]
    heard = np.array([answered(float(t)) for t in intended])
    status = np.array([0 if k == "timeout" or not h else 503 if k else 200 for k, h in zip(kinds, heard,
                                                                                           strict=True)])  # fmt: skip
    errors = [k if h else "connection" for k, h in zip(kinds, heard, strict=True)]
    out = run_dir / subdir
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "name": pa.array(["POST /orders"] * intended.size).dictionary_encode(),
        "intended": intended, "start": intended + 0.0002,
        "latency": np.array([latency(float(t)) for t in intended]), "status": status.astype(np.int16),
        "error": pa.array(errors, type=pa.string()).dictionary_encode(),
        "worker": np.zeros(intended.size, dtype=np.int16),
    }, schema=REQUEST_SCHEMA)  # fmt: skip
    pq.write_table(table, out / "worker-0.parquet")


def heartbeats(run_dir: Path, *, start: float, end: float, lost: Callable[[float], bool],
               interval: float = 0.1, meta: dict[str, Any] | None = None) -> None:  # fmt: skip
    """A write every ``interval`` in [start, end), acknowledged 2 ms later; ``lost(ack)``: absent after recovery."""
    sink = ParquetSink(run_dir / HEARTBEAT, HEARTBEAT_SCHEMA)
    survivors = []
    for seq, sent in enumerate(np.arange(start, end, interval), start=1):
        acked = float(sent) + 0.002
        sink.add({"seq": seq, "sent": float(sent), "acked": acked, "outcome": "acked", "error": None})
        if not lost(acked):
            survivors.append({"seq": seq, "count": 1})
    sink.close()
    pq.write_table(pa.Table.from_pylist(survivors, schema=HEARTBEAT_READBACK_SCHEMA), run_dir / HEARTBEAT_READBACK)
    write_meta(run_dir / HEARTBEAT, {"sampler": "heartbeat", "interval_s": interval, "timeout_s": 1.0,
                                     "max_write_s": 2.5, **(meta or {})})  # fmt: skip


def replicas(run_dir: Path, rows: Callable[[float], list[dict[str, Any]]], *, start: float, end: float,
             interval: float = 1.0) -> None:  # fmt: skip
    """``rows(t)``: one dict per region (region, desired, ready, optionally ready_ids) at each sample."""
    sink = ParquetSink(run_dir / REPLICAS, REPLICAS_SCHEMA)
    for t in np.arange(start, end, interval):
        for row in rows(float(t)):
            sink.add({"t": float(t), "ready_ids": None, **row})
    sink.close()
    write_meta(run_dir / REPLICAS, {"sampler": "replicas", "interval_s": interval})


def events(run_dir: Path, phases: dict[str, float], *, end: float, faults: list[tuple[float, str]] = (),  # type: ignore[assignment]
           extra: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]  # fmt: skip
    """Phase events (name -> start), each fault injected and landed, ``extra`` events, and drill.end."""
    with EventLog(run_dir / EVENTS, Clock()) as log:
        for name, t in phases.items():
            log.emit("phase", t=t, name=name)
        for i, (t, activity) in enumerate(faults):
            log.emit("fault.inject", t=t, activity=activity, fault_id=f"f{i}", action="drillbit.faults.x")
            log.emit("fault.result", t=t + 0.05, activity=activity, fault_id=f"f{i}", role="fault", landed=True)
        for e in extra:
            log.emit(**e)
        log.emit("drill.end", t=end, status="completed")


def judge(run_dir: Path, experiment: str | dict[str, Sla], **load: Any) -> tuple[Measurements, VerdictSet]:
    """The real analysis and verdicts over ``run_dir``, with an experiment's SLAs (or the given ones).

    ``load``: a load.json to write first (the generator's verdict on itself; not saturated by default).
    """
    import json

    (run_dir / "load.json").write_text(json.dumps({"saturated": False, "complete": True, "reasons": [], **load}))
    integrity = run_dir / INTEGRITY
    if not integrity.exists():  # the integrity checker ran after recovery and found nothing
        integrity.parent.mkdir(parents=True, exist_ok=True)
        integrity.write_text(json.dumps({"ran": True, "reason": None, "checked_at": T0, "source": "test",
                                         "acked_orders": 0, "checks": [], "elapsed_s": 0.0}))  # fmt: skip
    slas = slas_for(load_sla_file(), experiment) if isinstance(experiment, str) else experiment
    m = analyze(run_dir, slas)
    return m, evaluate(m, slas)


def verdict_of(result: VerdictSet, sla: str) -> Any:
    return next(v for v in result.verdicts if v.sla == sla)

