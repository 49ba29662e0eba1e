"""Replica restore (R1.5) from replica samples: a region that ran no API replica before the fault
(a one-replica manifest over two zones) is whole at 0 of 0; a region lost by the fault is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbit.analysis import _replicas_restored
from drillbit.core.rundir import REPLICAS, REPLICAS_SCHEMA
from drillbit.probes.samplers import ParquetSink, write_meta

FAULT_AT = 110.0


def _samples(run_dir: Path, counts: dict[str, list[tuple[int, int]]]) -> None:
    """counts: region -> (desired, ready) per second from t=100."""
    sink = ParquetSink(run_dir / REPLICAS, REPLICAS_SCHEMA)
    for region, rows in counts.items():
        for i, (desired, ready) in enumerate(rows):
            sink.add({"t": 100.0 + i, "region": region, "desired": desired, "ready": ready})
    sink.close()
    write_meta(run_dir / REPLICAS, {"sampler": "replicas", "interval_s": 1.0})


def test_a_region_empty_by_design_does_not_keep_the_replicas_from_being_restored(tmp_path: Path) -> None:
    killed = [(1, 1)] * 10 + [(1, 0)] * 3 + [(1, 1)] * 7  # the lone replica down 3 s after the fault
    _samples(tmp_path, {"region-a": killed, "region-b": [(0, 0)] * 20})
    r = _replicas_restored(tmp_path, FAULT_AT)
    assert r["dipped"] and r["restored_s"] == pytest.approx(3.0)


def test_a_region_the_fault_took_away_is_not_restored_at_0_of_0(tmp_path: Path) -> None:
    lost = [(2, 2)] * 10 + [(0, 0)] * 10  # a region lost for good: its watcher stopped
    _samples(tmp_path, {"region-a": [(2, 2)] * 20, "region-b": lost})
    assert _replicas_restored(tmp_path, FAULT_AT)["restored_s"] is None
