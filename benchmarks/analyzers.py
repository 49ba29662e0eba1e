"""Analyzer cost: the latency analyzer over 1 M and 10 M request records (target 10 M: <= 30 s, <= 2 GB RSS).

    python -m benchmarks.analyzers [--sizes 1000000 10000000]

Records are written first as the recorder writes them (Parquet in REQUEST_SCHEMA, one file per
generator process, 1 M rows each, row groups of 10 k); each size is then analyzed in a fresh
subprocess (read every file, 6 phases plus "all", corrected and uncorrected p50/p95/p99/max), so
its time and peak RSS are its own. For scale, the naive way (``HdrHistogram.record_value`` per
row) is timed on 200 k values and extrapolated.
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

from drillbit.core.rundir import REQUEST_SCHEMA, REQUESTS_DIR

__all__ = ["main", "write_records"]

TARGET_S, TARGET_GB = 30.0, 2.0
T0 = 1.8e9


def write_records(run_dir: Path, n: int, per_file: int = 1_000_000, rate: float = 3000.0) -> None:
    """``n`` synthetic open-model records at ``rate`` req/s: lognormal latency, 0.1 % errors, a little lateness."""
    rng = np.random.default_rng(42)
    out = run_dir / REQUESTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    names = pa.array(["POST /orders", "DELETE /orders/{id}", "GET /orders/{id}", "GET /book/{symbol}"])
    kinds = pa.array(["http", "timeout"])
    for w, lo in enumerate(range(0, n, per_file)):
        k = min(per_file, n - lo)
        intended = T0 + (lo + np.arange(k)) / rate
        err = np.where(rng.random(k) < 0.001, rng.integers(0, 2, k), -1).astype(np.int32)
        table = pa.table(
            {
                "name": pa.DictionaryArray.from_arrays(rng.integers(0, 4, k).astype(np.int32), names),
                "intended": intended,
                "start": intended + rng.exponential(0.0005, k),
                "latency": rng.lognormal(-4.5, 0.7, k),
                "status": np.where(err >= 0, 503, 200).astype(np.int16),
                "error": pa.DictionaryArray.from_arrays(pa.array(err, mask=err < 0), kinds),
                "worker": np.full(k, w, dtype=np.int16),
            },
            schema=REQUEST_SCHEMA,
        )
        pq.write_table(table, out / f"worker-{w}.parquet", row_group_size=10_000)


def _child(run_dir: str) -> None:
    from drillbit.probes.latency import analyze_run

    t = time.perf_counter()
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in (Path(run_dir) / REQUESTS_DIR).glob("*.parquet"))
    span = n / 3000.0
    phases = {f"p{i}": (T0 + i * span / 6, T0 + (i + 1) * span / 6) for i in range(6)}
    report = analyze_run(run_dir, phases)
    took = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = report.phases["all"]
    print(json.dumps({"seconds": took, "peak_gb": peak_kb / 2**20, "rows": s.count, "p99_ms": s.p99_ms}))


def _naive_seconds_per_value() -> float:
    from hdrh.histogram import HdrHistogram

    values = np.random.default_rng(1).integers(1, 100_000, 200_000).tolist()
    h = HdrHistogram(1, 3_600_000_000, 3)
    t = time.perf_counter()
    for v in values:
        h.record_value(v)
    return (time.perf_counter() - t) / len(values)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    print(f"{'latency analyzer':30} {'rows':>12} {'write':>8} {'analyze':>9} {'target':>7} {'ratio':>6} "
          f"{'peak RSS':>9} {'target':>7}  verdict")  # fmt: skip
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as tmp:
            t = time.perf_counter()
            write_records(Path(tmp), n)
            wrote = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-m", "benchmarks.analyzers", "--child", tmp], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        r = json.loads(out)
        ok = r["seconds"] <= TARGET_S and r["peak_gb"] <= TARGET_GB
        print(f"{'7 phases, p50/p95/p99/max x2':30} {r['rows']:>12,} {wrote:>6.1f} s {r['seconds']:>7.2f} s "
              f"{TARGET_S:>5.0f} s {r['seconds'] / TARGET_S:>6.2f} {r['peak_gb']:>6.2f} GB {TARGET_GB:>4.0f} GB  "
              f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    per_value = _naive_seconds_per_value()
    print(
        f"naive HdrHistogram.record_value per row: {per_value * 1e6:.1f} us/value = "
        f"{per_value * 2 * 10_000_000:.0f} s for 10 M rows (corrected + uncorrected), before any phase"
    )


if __name__ == "__main__":
    main()
