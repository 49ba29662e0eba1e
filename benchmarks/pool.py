"""Admission and pool sizing of the trading API under the default load, and during a rolling update.

    python -m benchmarks.pool [--seconds 30] [--hog] [--rolls 1]

Runs the trader mix at the steady profile's rate (80 req/s, open model) against a fresh sandbox,
rolls every replica ``--rolls`` times meanwhile, and prints:
- POST /orders p50/p95/p99 (from the intended send time) in the steady window and during rolls;
- failed and shed requests (shed: 503/429 with Retry-After);
- per pool, the most connections ever in use at once on any replica, against the pool's size:
  the measured concurrency the sandbox's ``write_pool_size`` and ``read_pool_size`` are set from.
``--hog`` keeps one core busy with another process throughout (a shared CI box).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.load.recording import SHED
from drillbit.load.runner import start_load
from drillbit.targets.sandbox import sandbox
from drillbit.targets.sandbox.sandbox import Sandbox

P99_TARGET_MS = 100.0  # seed 003: API p95 < 100 ms; the p99 is held to the same bound here
_PROFILE = "name: bench\nmodel: open\narrival: poisson\nstages:\n  - {{duration: {d}, rate: 80}}\nmax_in_flight: 200\ntimeout_s: 5\n"  # noqa: E501


@contextlib.contextmanager
def cpu_hog(on: bool) -> Iterator[None]:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        yield
    finally:
        if hog is not None:
            hog.kill()
            hog.wait(10)


def _peaks(sb: Sandbox, peaks: dict[str, float]) -> dict[str, float]:
    """Raise ``peaks`` to the highest figure of each admission gauge over every live replica (a
    replaced replica's figures go with it: read before each roll and after the last)."""
    for sock in sb.layout.run.glob("api-*.sock"):
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2.0) as client:
                text = client.get("http://replica/metrics").text
        except httpx.HTTPError:
            continue
        for name, labels, value in re.findall(r"^(sut_[a-z_]+)(\{[^}]*\})? (\S+)$", text, re.MULTILINE):
            if name.endswith(("_peak", "_pool_size")) or name == "sut_shed_total":
                key = f"{name}{labels}"
                peaks[key] = max(peaks.get(key, 0.0), float(value))
    return peaks


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(q * len(xs)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="steady window before the rolls")
    ap.add_argument("--rolls", type=int, default=1)
    ap.add_argument("--hog", action="store_true", help="keep one core busy with another process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as tmp, cpu_hog(args.hog):
        state = Path(tmp) / ".drill"
        sb = sandbox.up(state_dir=state, report=lambda m: None)
        windows: list[tuple[float, float]] = []
        try:
            profile = Path(tmp) / "bench.yaml"
            profile.write_text(_PROFILE.format(d=int(args.seconds + 25 * args.rolls + 5)))
            load = start_load("trader", profile, sb.front_door_url, Path(tmp) / "run")
            try:
                steady_from = time.time() + 3
                time.sleep(args.seconds)
                steady_to = time.time()
                peaks: dict[str, float] = {}
                for i in range(args.rolls):
                    _peaks(sb, peaks)
                    t0 = time.time()
                    result = sb.roll_out(f"bench-{i}")
                    windows.append((t0, time.time()))
                    assert result["landed"], result
                load.wait(120)
            finally:
                load.stop()
            _peaks(sb, peaks)
        finally:
            sandbox.down(state, report=lambda m: None)
        files = sorted((Path(tmp) / "run" / "requests").glob("*.parquet"))
        req = pa.concat_tables([pq.read_table(f) for f in files]).to_pydict()

    def corrected(i: float, s: float, lat: float) -> float:
        return s + lat - (s if math.isnan(i) else i)

    rows = list(zip(req["name"], req["intended"], req["start"], req["latency"], req["error"], strict=True))
    posts = [(s, corrected(i, s, lat)) for n, i, s, lat, e, in rows if n == "POST /orders" and not math.isnan(lat)]
    steady = [lat * 1000 for s, lat in posts if steady_from <= s <= steady_to]
    rolling = [lat * 1000 for s, lat in posts if any(a <= s <= b for a, b in windows)]
    failed = sum(1 for *_, e in rows if e and e != SHED)
    shed = sum(1 for *_, e in rows if e == SHED)
    hog = " (CPU hog on one core)" if args.hog else ""
    print(f"{'benchmark' + hog:58} {'figure':>22} {'target':>10} {'ratio':>7}")
    for label, xs in (("steady 80 req/s", steady), (f"during {args.rolls} roll(s)", rolling)):
        p50, p95, p99 = (_percentile(xs, q) for q in (0.5, 0.95, 0.99))
        print(
            f"{'POST /orders p50/p95/p99, ' + label:58} {p50:>6.1f}/{p95:>5.1f}/{p99:>6.1f} ms "
            f"{P99_TARGET_MS:>7.0f} ms {p99 / P99_TARGET_MS:>7.2f}   n={len(xs)}"
        )
    print(f"{'requests failed / shed, of ' + str(len(rows)):58} {failed:>12} / {shed:<7} {0:>10}")
    for pool in ("write", "read"):
        peak = peaks.get(f'sut_db_connections_in_use_peak{{pool="{pool}"}}', math.nan)
        size = peaks.get(f'sut_db_pool_size{{pool="{pool}"}}', math.nan)
        print(f"{f'{pool} pool: most connections in use at once, any replica':58} {peak:>12.0f} of {size:<7.0f}")
    waiting = peaks.get("sut_matching_waiting_peak", math.nan)
    print(f"{'most writes queued for their symbol, any replica':58} {waiting:>12.0f}")


if __name__ == "__main__":
    main()
