"""Replicas sampler: desired/ready replicas (and which were ready) per region, from any target with
``replicas()``, every second.

The target is duck-typed (``ReplicaSource``): the sandbox, a Kubernetes or AWS driver. A sample's
``t`` is when ``replicas()`` returned (when the counts were known: the conservative time for
"ready by then"). A call that raises is logged and counted (``probe_errors`` in the sidecar); the schedule goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from drillbit.core.clock import Clock
from drillbit.core.rundir import REPLICAS, REPLICAS_SCHEMA
from drillbit.probes.samplers import ParquetSink, Sampler, TickSampler, read_samples

__all__ = ["ReplicaSource", "ReplicasSampler", "load_replicas"]


class ReplicaSource(Protocol):
    def replicas(self) -> dict[str, dict[str, Any]]:
        """Per region: ``desired``, ``ready`` and, when the target can tell, ``ready_ids`` (the ready
        replicas' identities, e.g. pids: a replica that comes back is the same one, a new one is not)."""
        ...


class ReplicasSampler(Sampler):
    def __init__(self, target: ReplicaSource, run_dir: Path | str, *, clock: Clock, interval: float = 1.0) -> None:
        self.target, self.clock, self.interval = target, clock, interval
        self.path = Path(run_dir) / REPLICAS
        self.sink = ParquetSink(self.path, REPLICAS_SCHEMA)
        super().__init__()
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="replicas")  # fmt: skip

    def _probe(self, tick: float) -> None:
        counts = self.target.replicas()  # a driver error is logged and counted by TickSampler: a gap
        t = self.clock.now()
        for region, c in counts.items():
            ids = c.get("ready_ids")
            self.sink.add({"t": t, "region": region, "desired": int(c["desired"]), "ready": int(c["ready"]),
                           "ready_ids": None if ids is None else [str(i) for i in ids]})  # fmt: skip

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "replicas", "target": type(self.target).__name__, "interval_s": self.interval,
                **self._ticks.stats()}  # fmt: skip


def load_replicas(run_dir: Path | str) -> pd.DataFrame:
    table = read_samples(Path(run_dir) / REPLICAS, REPLICAS_SCHEMA)
    df = table.to_pandas()
    df["region"] = df["region"].astype(str)
    return df
