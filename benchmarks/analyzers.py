"""Analyzer cost: the latency analyzer over 1 M and 10 M request records (target 10 M: <= 30 s, <= 2 GB).

    python -m benchmarks.analyzers [--sizes 1000000 10000000]

Each size runs in a fresh subprocess so its peak RSS is its own.
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

from drillbit.rundir import REQUEST_SCHEMA, REQUESTS_DIR

TARGET_S, TARGET_GB = 30.0, 2.0


def write_records(run_dir: Path, n: int, per_file: int = 1_000_000) -> None:
    rng = np.random.default_rng(42)
    out = run_dir / REQUESTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    t0 = 1.8e9
    for w, lo in enumerate(range(0, n, per_file)):
        k = min(per_file, n - lo)
        intended = t0 + (lo + np.arange(k)) / 3000.0
        table = pa.table(
            {
                "name": pa.array(rng.choice(["POST /orders", "GET /book/{symbol}"], k)).dictionary_encode(),
                "intended": intended,
                "start": intended + rng.exponential(0.0005, k),
                "latency": rng.lognormal(-4.5, 0.7, k),
                "status": np.where(rng.random(k) < 0.001, 503, 200).astype(np.int16),
                "error": pa.nulls(k, pa.string()).dictionary_encode(),
                "worker": np.full(k, w, dtype=np.int16),
            },
            schema=REQUEST_SCHEMA,
        )
        pq.write_table(table, out / f"worker-{w}.parquet")


def _child(run_dir: str) -> None:
    from probes.latency import analyze_latency, load_requests

    t = time.perf_counter()
    reqs = load_requests(run_dir)
    t_load = time.perf_counter() - t
    lo = float(np.nanmin(reqs.intended))
    phases = {f"p{i}": (lo + i * 600, lo + (i + 1) * 600) for i in range(6)}
    stats = analyze_latency(reqs, phases)
    took = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": took, "load_s": t_load, "peak_gb": peak_kb / 2**20, "rows": len(reqs),
                      "p99_ms": stats["all"].p99_ms}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    print(f"{'latency analyzer':28} {'rows':>12} {'time':>9} {'target':>8} {'ratio':>6} {'peak RSS':>10} {'target':>7}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as tmp:
            write_records(Path(tmp), n)
            out = subprocess.run([sys.executable, "-m", "benchmarks.analyzers", "--child", tmp], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        r = json.loads(out)
        print(f"{'per-phase p50/p95/p99/max':28} {r['rows']:>12,} {r['seconds']:>7.2f} s {TARGET_S:>6.0f} s "
              f"{r['seconds'] / TARGET_S:>6.2f} {r['peak_gb']:>8.2f} GB {TARGET_GB:>5.0f} GB")  # fmt: skip


if __name__ == "__main__":
    main()
