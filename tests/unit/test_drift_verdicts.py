"""The soak profile's drift SLAs judged end to end: analysis -> measurements.json's drift -> verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.results import Measurements, Outcome
from drillbit.core.rundir import HARNESS, HARNESS_SCHEMA
from drillbit.probes.drift import MB, analyze_drift
from drillbit.sla import Sla, load_sla_file, slas_for
from drillbit.verdicts import evaluate
from tests.unit.rundirs import T0, write_requests

#: the soak profile's shipped drift SLA, and the harness memory SLA a team's file may add (not shipped:
#: the harness's memory is drillbit's figure, not the platform's)
SOAK = {"latency_drift": slas_for(load_sla_file(), "observe", profile="soak")["latency_drift"],
        "harness_memory_slope": Sla(metric="harness_memory_slope_mb_min", op="<", target=1, requirement="harness",
                                    text="every harness process grows < 1 MB/min")}  # fmt: skip


def _soak(run: Path, minutes: float, mb_per_min: float) -> Measurements:
    n = int(minutes * 60)
    t = T0 + np.arange(n, dtype=float)
    rss = ((60 + mb_per_min * np.arange(n) / 60) * MB).astype(np.int64)
    (run / HARNESS).parent.mkdir(parents=True)
    pq.write_table(pa.table({"t": t, "role": ["drill"] * n, "worker": [None] * n, "pid": [1] * n, "host": ["h"] * n,
                             "remote": [False] * n, "rss_bytes": rss, "cpu_percent": np.full(n, 5.0),
                             "busy_percent": np.full(n, 5.0)}, schema=HARNESS_SCHEMA), run / HARNESS)  # fmt: skip
    write_requests(run, n * 5, rate=5, start=T0)
    return Measurements(fault_at=T0, drift=analyze_drift(run))


def _verdicts(m: Measurements) -> dict[str, Outcome]:
    return {v.sla: v.verdict for v in evaluate(m, SOAK).verdicts}


def test_an_hour_of_flat_memory_and_steady_latency_passes(tmp_path: Path) -> None:
    assert _verdicts(_soak(tmp_path / "r", 60, 0.0)) == {"harness_memory_slope": Outcome.PASS,
                                                         "latency_drift": Outcome.PASS}


def test_an_hour_of_a_2_mb_per_min_leak_fails(tmp_path: Path) -> None:
    assert _verdicts(_soak(tmp_path / "r", 60, 2.0))["harness_memory_slope"] is Outcome.FAIL


def test_a_5_min_soak_is_inconclusive_never_pass(tmp_path: Path) -> None:
    assert set(_verdicts(_soak(tmp_path / "r", 5, 0.0)).values()) == {Outcome.INCONCLUSIVE}


def test_no_harness_samples_is_inconclusive(tmp_path: Path) -> None:
    m = Measurements(fault_at=T0, unmeasured={"drift": "no harness samples (the drill applied no load)"})
    assert set(_verdicts(m).values()) == {Outcome.INCONCLUSIVE}
