"""Sandbox benchmarks: cold start, unplanned failover, order throughput and p95, idle memory.

    python -m benchmarks.sandbox [--failovers 5] [--load-seconds 10] [--concurrency 8]

Targets (issue 2): cold start <= 15 s; failover time reported (median of N); idle PSS reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psutil

from drillbit.targets.sandbox import procs, sandbox
from drillbit.targets.sandbox.sandbox import Sandbox

COLD_START_TARGET_S = 15.0


def _write_ok(url: str) -> bool:
    body = {"symbol": "BENCH", "side": "buy", "price": "1.00", "qty": 1, "client_order_id": uuid.uuid4().hex}
    try:
        return httpx.post(f"{url}/orders", json=body, timeout=1.0).status_code == 201
    except httpx.HTTPError:
        return False


def failover_seconds(sb: Sandbox, mode: sandbox.FailoverMode) -> float:
    """Fault injection -> first acknowledged write through the front door."""
    old = sb.primary()
    assert old is not None
    t0 = time.monotonic()
    sb.failover_db(mode, wait=False)
    while not _write_ok(sb.front_door_url):
        time.sleep(0.02)
    took = time.monotonic() - t0
    if mode == "kill-node":
        sb.restore_region(old)
    else:  # the old primary rejoins by itself; wait until it streams again
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(m["state"] in ("running", "streaming") for m in sb.cluster()):
            time.sleep(0.2)
    return took


async def _load(url: str, seconds: float, concurrency: int) -> tuple[int, int, list[float]]:
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    sides = ("buy", "sell")

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        n = 0
        while time.monotonic() < stop:
            n += 1
            body = {
                "symbol": f"B{i % 4}",
                "side": sides[n % 2],
                "price": f"{100 + (n % 7) - 3}.00",
                "qty": 1 + n % 5,
                "client_order_id": uuid.uuid4().hex,
            }
            t = time.perf_counter()
            try:
                r = await client.post("/orders", json=body)
                ok = r.status_code == 201
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=5.0, limits=limits) as client:
        await asyncio.gather(*(worker(i, client) for i in range(concurrency)))
    return len(lat), errors, lat


def idle_pss_mb(sb: Sandbox) -> float:
    total = 0
    for p in procs.tagged(sb.state.id):
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--load-seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="drillbit-bench-") as tmp:
        state = Path(tmp) / ".drill"
        t0 = time.monotonic()
        sb = sandbox.up(state_dir=state, report=lambda m: None)
        cold = time.monotonic() - t0
        try:
            time.sleep(5)
            pss = idle_pss_mb(sb)
            cpu = sum(p.cpu_percent(interval=None) for p in procs.tagged(sb.state.id))
            time.sleep(5)
            cpu = sum(p.cpu_percent(interval=None) for p in procs.tagged(sb.state.id))
            n, errors, lat = asyncio.run(_load(sb.front_door_url, args.load_seconds, args.concurrency))
            lat.sort()
            p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
            p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else float("nan")
            pg = [failover_seconds(sb, "kill-postgres") for _ in range(args.failovers)]
            node = [failover_seconds(sb, "kill-node") for _ in range(args.failovers)]
            sw = [failover_seconds(sb, "switchover") for _ in range(args.failovers)]
        finally:
            sandbox.down(state, report=lambda m: None)
    print(f"{'benchmark':58} {'figure':>14} {'target':>12} {'ratio':>7}")
    print(
        f"{'sandbox cold start (up -> front door ready)':58} {cold:>12.1f} s {COLD_START_TARGET_S:>10.0f} s "
        f"{cold / COLD_START_TARGET_S:>7.2f}"
    )
    print(f"{'idle PSS, whole sandbox':58} {pss:>11.0f} MB {'report':>12}")
    print(f"{'idle CPU, whole sandbox (% of one core)':58} {cpu:>12.1f} % {'report':>12}")
    print(
        f"{f'orders/s through front door (c={args.concurrency})':58} {n / args.load_seconds:>12.0f}/s {'report':>12}"
        f"   errors {errors}"
    )
    print(f"{'order placement p50 / p95':58} {p50:>6.1f}/{p95:>5.1f} ms {100:>9} ms {p95 / 100:>7.2f}")
    for name, xs in (("kill-postgres", pg), ("kill-node (host loss)", node), ("switchover", sw)):
        print(
            f"{'failover -> first write, ' + name + ' (median)':58} {statistics.median(xs):>12.2f} s {'report':>12}"
            f"   all: {', '.join(f'{x:.2f}' for x in xs)}"
        )


if __name__ == "__main__":
    main()
