"""Generator throughput: Locust with the per-request recorder vs without, and vs wrk.

    python -m benchmarks.generator [--seconds 10] [--users 10]

Same fast server (nginx from Debian, loopback, pinned to core 1) and the generator pinned to
core 0 for every run, so the figures compare the generators, not the machine's mood.
Targets: recorder overhead <= 10 %; Locust (recorder on) >= 0.15 x wrk.
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

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
    uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""


def _nginx(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(conf), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def _locust(tmp: Path, url: str, seconds: float, users: int, record: bool) -> float:
    profile = tmp / "closed.yaml"
    profile.write_text(f"name: bench\nmodel: closed\nstages:\n  - {{duration: {seconds}, users: {users}, "
                       f"spawn_rate: {users * 10}}}\n")  # fmt: skip
    prefix = tmp / ("rec" if record else "plain")
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "locust", "-f", "loadtests/ping.py", "--headless",
           "--host", url, "--drill-profile", str(profile), "--csv", str(prefix), "--only-summary",
           "--loglevel", "ERROR"]  # fmt: skip
    cmd += ["--drill-run-dir", str(tmp / "run")] if record else ["--drill-run-dir", ""]
    subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv") as f:
        agg = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    if record:
        shutil.rmtree(tmp / "run", ignore_errors=True)
    return float(agg["Requests/s"])


def _wrk(url: str, seconds: float, users: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{users}", f"-d{int(seconds)}s", url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"cannot read wrk's output: {out}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    missing = [tool for tool in ("wrk", "nginx", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (apt-get install wrk nginx util-linux)")
        return
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as d:
        tmp = Path(d)
        port = free_ports([0])[0]
        server = _nginx(tmp, port)
        url = f"http://127.0.0.1:{port}"
        try:
            plain = max(_locust(tmp, url, args.seconds, args.users, record=False) for _ in range(args.repeats))
            rec = max(_locust(tmp, url, args.seconds, args.users, record=True) for _ in range(args.repeats))
            wrk = max(_wrk(f"{url}/ping", args.seconds, args.users) for _ in range(args.repeats))
        finally:
            server.send_signal(signal.SIGQUIT)
            server.wait(10)
    overhead = (plain - rec) / plain * 100
    print(f"{'generator (1 core, nginx on the other)':42} {'req/s':>10} {'figure':>10} {'target':>10}")
    print(f"{'Locust FastHttpUser, plain':42} {plain:>10.0f}")
    print(f"{'Locust + drillbit recorder':42} {rec:>10.0f} {overhead:>8.1f} % {'<= 10 %':>10}  (overhead)")
    print(f"{'wrk -t1 -c' + str(args.users):42} {wrk:>10.0f} {rec / wrk:>9.2f}x {'>= 0.15x':>10}  (recorder on / wrk)")


if __name__ == "__main__":
    main()
