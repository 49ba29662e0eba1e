"""Generator throughput: Locust with drillbit's per-request recorder vs plain Locust, and vs wrk.

    python -m benchmarks.generator [--seconds 10] [--users 10] [--repeats 2]

One fast server (nginx from Debian, loopback only, pinned to CPU 1) and every generator pinned to
CPU 0, so the figures compare generators, not the machine's mood. Runs are interleaved and the
best of ``--repeats`` is kept (other work on the box only ever slows a run down).
  - plain Locust: a bare FastHttpUser locustfile, no drillbit code at all;
  - Locust + recorder: loadtests/ping.py (closed model) recording every request to Parquet;
  - open model: loadtests/ping.py asked for far more than it can send; its achieved rate is one
    generator process's open-model ceiling (load.json flags it saturated, as it must, and still
    accounts for every request the schedule made due: recorded == sent + not_sent);
  - wrk -t1 with as many connections as Locust has users.
Targets: Locust with the recorder >= 0.93 x plain Locust (overhead <= 7 %); the open model's ceiling >= 0.9 x
the closed loop's (both recording); wrk's ratio for reference.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drillbit.targets.sandbox.procs import free_ports

__all__ = ["main", "nginx", "stop_nginx"]

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_CPU, SERVER_CPU = "0", "1"
TARGET_OVERHEAD, TARGET_OPEN = 7.0, 0.9

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
    uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

PLAIN_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def ping(self) -> None:
        self.client.get("/ping", name="GET /ping")
"""


def nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, "nginx", "-c", str(conf), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"nginx did not start: see {tmp / 'error.log'}")


def stop_nginx(server: subprocess.Popen[bytes]) -> None:
    """Graceful quit (SIGQUIT), killed after 10 s."""
    server.send_signal(signal.SIGQUIT)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def _aggregated_rps(prefix: Path) -> float:
    with open(f"{prefix}_stats.csv") as f:
        agg = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return float(agg["Requests/s"])


def _plain(tmp: Path, url: str, seconds: float, users: int) -> float:
    lf = tmp / "plain_locustfile.py"
    lf.write_text(PLAIN_LOCUSTFILE)
    prefix = tmp / "plain"
    cmd = ["taskset", "-c", GENERATOR_CPU, sys.executable, "-m", "locust", "-f", str(lf), "--headless",
           "--host", url, "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--csv", str(prefix),
           "--only-summary", "--loglevel", "ERROR"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
    return _aggregated_rps(prefix)


def _recorded(tmp: Path, url: str, seconds: float, users: int) -> tuple[float, int]:
    profile = tmp / "closed.yaml"
    profile.write_text(f"name: bench\nmodel: closed\nstages:\n  - {{duration: {seconds}, users: {users}, "
                       f"spawn_rate: {users}}}\n")  # fmt: skip
    prefix, run = tmp / "rec", tmp / "run"
    shutil.rmtree(run, ignore_errors=True)
    cmd = ["taskset", "-c", GENERATOR_CPU, sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "ping.py"),
           "--headless", "--host", url, "--drill-profile", str(profile), "--drill-run-dir", str(run),
           "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in (run / "requests").glob("*.parquet"))
    return _aggregated_rps(prefix), rows


def _open_ceiling(tmp: Path, url: str, seconds: float) -> tuple[float, bool, float]:
    """One open-model run asked for 50,000 req/s: (requests sent per second, flagged saturated, and the
    generator's median busy percent of a core: below ~95 %, other work on the box held it back)."""
    from drillbit.load.runner import run_load

    profile = tmp / "flood.yaml"
    profile.write_text(f"name: flood\nmodel: open\nstages:\n  - {{duration: {seconds}, rate: 50000}}\n"
                       "max_in_flight: 100\ntimeout_s: 2\n")  # fmt: skip
    run = tmp / "open-run"
    shutil.rmtree(run, ignore_errors=True)
    result = run_load("ping", profile, url, run, cpu_affinity=[int(GENERATOR_CPU)], timeout=seconds + 60)
    if result.recorded != result.sent + result.not_sent:
        raise RuntimeError(f"open model lost requests: recorded {result.recorded} != sent {result.sent} + not sent "
                           f"{result.not_sent}")  # fmt: skip
    return result.achieved_rps, result.saturated, result.busy_percent_busiest


MICRO = """
import time
from pathlib import Path
from drillbit.core.clock import Clock
from drillbit.load.recorder import Recorder

class Response:
    status_code = 200

rec, response, n = Recorder(Path({run!r}), 0, Clock()), Response(), 500_000
t = time.perf_counter()
for i in range(n):
    rec.on_request("GET", "GET /ping", 1.234, 2, response, {{"intended": 1.0, "sent": 1.0}}, None)
rec.close()
print((time.perf_counter() - t) / n)
"""


def _recorder_cost(tmp: Path) -> float:
    """Seconds the recorder spends per request (flushes to Parquet included), in a process of its own."""
    code = MICRO.format(run=str(tmp / "micro"))
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def _wrk(url: str, seconds: float, users: int) -> float:
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, "wrk", "-t1", f"-c{users}", f"-d{int(seconds)}s", url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"cannot read wrk's output: {out}")
    return float(m.group(1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    missing = [tool for tool in ("wrk", "nginx", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"benchmarks.generator: {', '.join(missing)} not installed: `make bench` installs them "
                         "(Debian: apt-get install -y wrk nginx util-linux); a skipped benchmark is not a figure")
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as d:
        tmp = Path(d)
        port = free_ports([0])[0]
        server = nginx(tmp, port)
        url = f"http://127.0.0.1:{port}"
        plain, rec, wrk, ceiling, busy = [], [], [], [], []
        try:
            for _ in range(args.repeats):
                plain.append(_plain(tmp, url, args.seconds, args.users))
                rps, rows = _recorded(tmp, url, args.seconds, args.users)
                rec.append(rps)
                achieved, saturated, generator_busy = _open_ceiling(tmp, url, args.seconds)  # beside its yardstick
                ceiling.append(achieved)
                busy.append(generator_busy)
                wrk.append(_wrk(f"{url}/ping", args.seconds, args.users))
            cost = _recorder_cost(tmp)
        finally:
            stop_nginx(server)
    best_plain, best_rec, best_wrk = max(plain), max(rec), max(wrk)
    overhead = (best_plain - best_rec) / best_plain * 100
    ratio = best_rec / best_wrk
    print(f"generator on CPU {GENERATOR_CPU}, nginx on CPU {SERVER_CPU}, {args.users} connections, "
          f"{args.seconds:g} s, best of {args.repeats}")  # fmt: skip
    print(f"{'generator':44} {'req/s':>9} {'figure':>10} {'target':>9}  verdict")
    runs = ", ".join(f"{x:.0f}" for x in plain)
    print(f"{'Locust FastHttpUser, plain (no drillbit)':44} {best_plain:>9.0f}   runs: {runs}")
    print(
        f"{'Locust + drillbit recorder (every request)':44} {best_rec:>9.0f} {overhead:>8.1f} % {'<= 7 %':>9}  "
        f"{'PASS' if overhead <= TARGET_OVERHEAD else 'FAIL'} (overhead; {rows:,} rows in the last run)"
    )
    print(
        f"{'wrk -t1 -c' + str(args.users):44} {best_wrk:>9.0f} {ratio:>9.2f}x {'-':>9}  "
        "(Locust + recorder / wrk: for reference, a C event loop with no per-request record)"
    )
    print(
        f"recorder cost: {cost * 1e6:.2f} us per request = {cost * best_plain * 100:.1f} % of a request's "
        f"generator time at the plain rate (the overhead without the run-to-run noise)"
    )
    best_open = max(ceiling)
    open_ratio = best_open / best_rec
    paired = ", ".join(f"{o / c:.2f}" for o, c in zip(ceiling, rec, strict=True))
    print(f"{'open model, one process, asked 50,000 req/s':44} {best_open:>9.0f} {open_ratio:>9.2f}x {'>= 0.9x':>9}  "
          f"{'PASS' if open_ratio >= TARGET_OPEN else 'FAIL'} (its ceiling / the closed loop's with the recorder; "
          f"flagged saturated: {saturated})")  # fmt: skip
    print(f"  open-model runs: {', '.join(f'{x:.0f}' for x in ceiling)} req/s, the generator busy "
          f"{', '.join(f'{b:.0f}' for b in busy)} % of a core; closed-loop runs: {', '.join(f'{x:.0f}' for x in rec)}; "
          f"each open run / the closed run just before it: {paired}")  # fmt: skip


if __name__ == "__main__":
    main()
