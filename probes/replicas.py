"""Replicas sampler: desired/ready replicas per region from the target, every second."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow.parquet as pq

from drillbit.clock import Clock
from drillbit.rundir import REPLICAS, REPLICAS_SCHEMA
from probes.samplers import ParquetSink, TickSampler

__all__ = ["ReplicaSource", "ReplicasSampler", "load_replicas"]


class ReplicaSource(Protocol):
    def replicas(self) -> dict[str, dict[str, int]]: ...


class ReplicasSampler:
    def __init__(self, target: ReplicaSource, run_dir: Path, *, clock: Clock, interval: float = 1.0) -> None:
        self.target = target
        self.sink = ParquetSink(Path(run_dir) / REPLICAS, REPLICAS_SCHEMA)
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=1,
                                  on_flush=self.sink.flush, name="replicas")  # fmt: skip

    def _probe(self, t: float) -> None:
        for region, counts in self.target.replicas().items():
            self.sink.add({"t": t, "region": region, "desired": counts["desired"], "ready": counts["ready"]})

    def start(self) -> ReplicasSampler:
        self._ticks.start()
        return self

    def stop(self) -> None:
        self._ticks.stop()
        self.sink.close()

    def __enter__(self) -> ReplicasSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def load_replicas(run_dir: Path | str) -> pd.DataFrame:
    path = Path(run_dir) / REPLICAS
    if not path.exists():
        raise FileNotFoundError(f"no replica samples in {run_dir} ({REPLICAS})")
    return pq.read_table(path).to_pandas()
