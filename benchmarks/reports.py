"""Report cost: analysis + report.html from run directories with 1 M and 10 M request records
(target for 10 M: <= 30 s and <= 2 GB peak RSS, analysis included).

    python -m benchmarks.reports [--sizes 1000000 10000000]

Each run directory is written as a drill leaves it: request records (Parquet, one file per
generator process of 1 M rows, as ``benchmarks.analyzers`` writes them: 3000 req/s, so 10 M
rows span 55 minutes), availability probes every 100 ms, replicas every second, phase and fault
events, run.json. A fresh subprocess per size then runs the drill's tail end and is timed with
its own peak RSS: the latency analysis (``drillbit.probes.latency.analyze_run`` -> measurements.json) and
``reports.build`` (which reads every record again for the per-second timeline). The report's
size is printed: it does not grow with the records (charts are bucketed per second).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.analyzers import T0, write_records
from drillbit.core.clock import Clock
from drillbit.core.events import EventLog
from drillbit.core.results import Measurements, RunInfo, write_model
from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA, EVENTS, REPLICAS, REPLICAS_SCHEMA

__all__ = ["main", "write_run_dir"]

TARGET_S, TARGET_GB = 30.0, 2.0
RATE = 3000.0


def write_run_dir(d: Path, n: int) -> None:
    """A run directory with ``n`` request records and the samples a drill of that length leaves."""
    write_records(d, n)
    span = n / RATE
    (d / "samples").mkdir(parents=True, exist_ok=True)
    t = T0 + np.arange(0, span, 0.1)
    ok = ~((t >= T0 + span / 3) & (t < T0 + span / 3 + 4.0))
    pq.write_table(pa.table({"t": t, "ok": ok, "latency": np.where(ok, 0.004, np.nan),
                             "status": np.where(ok, 200, 0).astype(np.int16),
                             "error": pa.array(np.full(len(t), "connection"), mask=ok).dictionary_encode()},
                            schema=AVAILABILITY_SCHEMA), d / AVAILABILITY)  # fmt: skip
    ts = np.repeat(T0 + np.arange(0, span, 1.0), 2)
    regions = np.tile(np.array([0, 1], dtype=np.int32), len(ts) // 2)
    pq.write_table(pa.table({"t": ts, "region": pa.DictionaryArray.from_arrays(regions, pa.array(["a", "b"])),
                             "desired": np.full(len(ts), 3, np.int32), "ready": np.full(len(ts), 3, np.int32),
                             "ready_ids": pa.nulls(len(ts), pa.list_(pa.string()))},
                            schema=REPLICAS_SCHEMA), d / REPLICAS)  # fmt: skip
    with EventLog(d / EVENTS, Clock()) as log:
        for i, name in enumerate(("baseline", "fault", "recovery", "after")):
            log.emit("phase", t=T0 + i * span / 4, name=name)
        log.emit("fault.inject", t=T0 + span / 3, activity="kill-region", action="drillbit.actions.kill_region")
        log.emit("fault.revert", t=T0 + span / 3 + 60, activity="kill-region")
    write_model(d / "run.json", RunInfo(id=d.name, target={"name": "bench", "fingerprint": "x"}, operator="bench",
                                        host="bench", pid=1, started_at=T0, ended_at=T0 + span))  # fmt: skip


def _child(run_dir: str) -> None:
    from drillbit.probes.latency import analyze_run, phases_from_events
    from drillbit.reports import build

    d = Path(run_dir)
    t0 = time.perf_counter()
    latency = analyze_run(d, phases_from_events(d))
    write_model(d / "measurements.json", Measurements(fault_at=None, phases=phases_from_events(d),
                                                      latency=latency.to_dict()))  # fmt: skip
    t1 = time.perf_counter()
    build(d)
    t2 = time.perf_counter()
    print(json.dumps({"analysis_s": t1 - t0, "report_s": t2 - t1, "total_s": t2 - t0,
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      "html_kb": (d / "report.html").stat().st_size / 1024,
                      "rows": latency.phases["all"].count}))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    print(f"{'report.html from a run dir':28} {'rows':>12} {'write':>7} {'analysis':>9} {'report':>8} {'total':>8} "
          f"{'target':>7} {'ratio':>6} {'peak RSS':>9} {'target':>7} {'html':>8}  verdict")  # fmt: skip
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="drillbit-bench-report-") as tmp:
            d = Path(tmp) / "run"
            d.mkdir()
            t = time.perf_counter()
            write_run_dir(d, n)
            wrote = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-m", "benchmarks.reports", "--child", str(d)], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        ok = r["total_s"] <= TARGET_S and r["peak_gb"] <= TARGET_GB
        print(f"{'analysis + build()':28} {r['rows']:>12,} {wrote:>5.1f} s {r['analysis_s']:>7.2f} s "
              f"{r['report_s']:>6.2f} s {r['total_s']:>6.2f} s {TARGET_S:>5.0f} s {r['total_s'] / TARGET_S:>6.2f} "
              f"{r['peak_gb']:>6.2f} GB {TARGET_GB:>4.0f} GB {r['html_kb']:>5.0f} KB  "
              f"{'PASS' if ok else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
