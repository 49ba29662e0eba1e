"""Scale-out and the remote-worker path: Locust with drillbit's recorder on 1, then 2 worker processes.

    python -m benchmarks.scaleout [--seconds 10] [--users 20]

One static server (nginx from Debian, loopback only) and loadtests/ping.py in the closed model:
  - 1 process, then 2 worker processes (Locust's --processes) writing their records into the run
    directory: the achieved rate's ratio, and whether the records written are exactly the requests
    Locust counted (target: all of them, and 2 processes > 1.0x one on this 2-core box);
  - 2 worker processes sending their records to the master (the remote-worker path,
    drillbit.load.transit): the rate against writing locally, records received against sent
    (target: all), the master's CPU per record received, and what that makes at 10,000 records/s
    (target: the master keeps up, i.e. under one core).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from benchmarks.generator import nginx, stop_nginx
from drillbit.core.rundir import read_transit
from drillbit.load.runner import start_load
from drillbit.targets.sandbox.procs import free_ports

__all__ = ["main"]


def _locust_count(prefix: Path) -> int:
    with open(f"{prefix}_stats.csv") as f:
        agg = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return int(agg["Request Count"])


def _run(tmp: Path, url: str, seconds: float, users: int, processes: int, via: str) -> dict[str, float]:
    profile = tmp / "closed.yaml"
    profile.write_text(f"name: bench\nmodel: closed\nstages:\n  - {{duration: {seconds}, users: {users}, "
                       f"spawn_rate: {users}}}\n")  # fmt: skip
    run = tmp / f"run-{processes}-{via}"
    shutil.rmtree(run, ignore_errors=True)
    prefix = run / "locust"
    load = start_load("ping", profile, url, run, processes=processes, records_via=via,
                      extra_args=["--csv", str(prefix)])  # fmt: skip
    master = psutil.Process(load.pid)
    cpu = 0.0
    while load.running():  # the master's own CPU (its workers are its children, counted apart)
        try:
            times = master.cpu_times()
            cpu = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    result = load.wait(seconds + 60)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in (run / "requests").glob("*.parquet"))
    transit = read_transit(run) or {}
    silent = transit.get("unaccounted_workers") or []
    sent = sum(int(w.get("rows_sent") or 0) for w in (transit.get("workers") or {}).values())
    return {"rps": result.achieved_rps, "rows": rows, "locust": _locust_count(prefix), "master_cpu_s": cpu,
            "lost": float(transit.get("rows_lost") or 0), "unaccounted": float(len(silent)), "sent": sent}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=20)
    args = ap.parse_args(argv)
    if shutil.which("nginx") is None:
        raise SystemExit("benchmarks.scaleout: nginx not installed: `make bench` installs it (apt-get install nginx)")
    with tempfile.TemporaryDirectory(prefix="drillbit-scaleout-") as d:
        tmp = Path(d)
        port = free_ports([0])[0]
        server = nginx(tmp, port)
        url = f"http://127.0.0.1:{port}"
        try:
            one = _run(tmp, url, args.seconds, args.users, 1, "files")
            two = _run(tmp, url, args.seconds, args.users, 2, "files")
            remote = _run(tmp, url, args.seconds, args.users, 2, "master")
        finally:
            stop_nginx(server)
    for name, r in (("1 process", one), ("2 processes", two), ("2 processes, records via the master", remote)):
        print(f"{name:38s} {r['rps']:8.0f} req/s  records {int(r['rows'])} (Locust counted {int(r['locust'])})"
              + (f"; the workers sent {int(r['sent'])}, lost in transit {int(r['lost'])}, unaccounted workers "
                 f"{int(r['unaccounted'])}" if name.endswith("master") else ""))  # fmt: skip
    print(f"scale-out: 2 processes / 1 = {two['rps'] / one['rps']:.2f}x (target > 1.0x on 2 cores shared with nginx)")
    # Locust's final count is taken while the last requests are still in flight: up to one per user apart
    close = all(abs(r["rows"] - r["locust"]) <= args.users for r in (one, two, remote))
    exact = remote["rows"] == remote["sent"] and not remote["lost"] and not remote["unaccounted"]
    print(f"records kept: every request Locust counted, within the {args.users} in flight at the stop: {close}; "
          f"via the master, received = sent exactly: {exact} (target: both)")  # fmt: skip
    per_record = remote["master_cpu_s"] / max(remote["rows"], 1)
    transit = per_record - two["master_cpu_s"] / max(two["rows"], 1)  # beyond what a master costs anyway
    print(f"remote path: {remote['rps'] / two['rps']:.2f}x the rate of writing locally; the master's CPU "
          f"{per_record * 1e6:.1f} us per record ({transit * 1e6:.1f} us of it the records' transit) -> "
          f"{per_record * 10_000 * 100:.0f} % of a core at 10,000 records/s (target < 100 %)")  # fmt: skip


if __name__ == "__main__":
    main()
