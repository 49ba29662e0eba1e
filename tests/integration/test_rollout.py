"""Rolling updates of the sandbox's API replicas under real load (seed R1.4: zero failed requests).

Two load generators, two rolls: the trader locustfile under the open model at the default rate
(Locust's geventhttpclient pool, every request recorded), and a closed loop of keep-alive POSTs
with no think time (httpx), the client most exposed to a connection closed under its next
request. Both roll while another process keeps one of the machine's cores busy (a CPU hog, as
on a shared CI box). The session's sandbox is rolled back to its original version at the end.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.errors import ConfigError
from drillbit.load.recording import ABANDONED, NOT_SENT, SHED
from drillbit.load.runner import start_load
from drillbit.targets.sandbox.render import api_version_file
from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow


def _new_version(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _wait_all_ready(sb: Sandbox, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while any(c["ready"] != c["desired"] for c in sb.replicas().values()):
        assert time.monotonic() < deadline, f"replicas not ready: {sb.replicas()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cpu_hog() -> Iterator[int]:
    """Another process that keeps one core busy for the module's rolls (stopped at the end)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield hog.pid
    finally:
        hog.kill()
        hog.wait(10)


@pytest.fixture(scope="module")
def sb(sandbox_env: Sandbox, cpu_hog: int) -> Iterator[Sandbox]:
    """The session sandbox, whole, and back at its original version (and replica count) afterwards."""
    _wait_all_ready(sandbox_env)
    original = {v for vs in sandbox_env.versions().values() for v in vs}
    assert len(original) == 1, original
    yield sandbox_env
    result = sandbox_env.roll_out(original.pop())
    assert result["landed"], result
    for r in sandbox_env.topology.regions:  # undo a scale-out the load may have caused
        if sandbox_env.supervisor.numprocesses(f"api-{r.name}") != r.api_replicas:
            sandbox_env.supervisor.set_numprocesses(f"api-{r.name}", r.api_replicas)
    _wait_all_ready(sandbox_env)


@dataclass
class TraderRoll:
    version: str
    before: dict[str, list[str]]
    result: dict[str, Any]
    requests: dict[str, list[Any]] = field(default_factory=dict)


STOPPED = (NOT_SENT, ABANDONED)


def _roll_window(result: dict[str, Any]) -> tuple[float, float]:
    steps = result["replaced"]
    start = min(datetime.fromisoformat(s["signalled_at"]).timestamp() for s in steps)
    return start, start + result["duration_s"]


@pytest.fixture(scope="module")
def trader_roll(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> TraderRoll:
    """A roll of every replica while the trader mix runs at the default 80 req/s (open model, Poisson)."""
    tmp = tmp_path_factory.mktemp("trader-roll")
    profile = tmp / "roll.yaml"
    profile.write_text(
        "name: roll\nmodel: open\narrival: poisson\nstages:\n  - {duration: 300, rate: 80}\n"
        "max_in_flight: 100\ntimeout_s: 5\n"
    )
    version = _new_version("trader")
    before = sb.versions()
    load = start_load("trader", profile, sb.front_door_url, tmp / "run")
    try:
        time.sleep(4.0)  # a baseline, so every connection of the pool is open and in use
        result = sb.roll_out(version)
        time.sleep(2.0)  # the load runs on until the roll is over, however long it took
    finally:
        outcome = load.stop()
    assert outcome.complete and outcome.recorded == outcome.due, outcome
    files = sorted((tmp / "run" / "requests").glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return TraderRoll(version, before, result, table.to_pydict())


def test_no_trader_request_fails_or_is_shed_while_every_replica_is_replaced(trader_roll: TraderRoll) -> None:
    """Zero downtime (R1.4): no request failed, and none was shed (503 + Retry-After) either;
    shed requests are counted apart so an overload is never mistaken for (or hidden in) a failure."""
    req, result = trader_roll.requests, trader_roll.result
    start, end = _roll_window(result)
    # the generator's stop leaves requests not sent yet, and in flight (abandoned): not failures,
    # as long as they were due after the roll (a request stuck in the roll would still show)
    stopped = [(e, s) for e, i, s in zip(req["error"], req["intended"], req["start"], strict=True) if e in STOPPED]
    assert all(s > end or (math.isnan(s) and e == NOT_SENT) for e, s in stopped), stopped
    errors = Counter(
        (n, s, e) for n, s, e in zip(req["name"], req["status"], req["error"], strict=True) if e and e not in STOPPED
    )
    shed = {k: v for k, v in errors.items() if k[2] == SHED}
    failed = {k: v for k, v in errors.items() if k[2] != SHED}
    assert not failed and not shed, {"failed": failed, "shed": shed}
    assert len(result["replaced"]) >= sum(len(v) for v in trader_roll.before.values())  # the autoscaler may add some
    # the load really ran through the roll: requests were sent while each replica was replaced
    for step in result["replaced"]:
        t0 = datetime.fromisoformat(step["signalled_at"]).timestamp()
        during = sum(t0 <= s <= t0 + 1 + step["replaced_in_s"] for s in req["start"])
        assert during > 20, (step, during)
    latencies = sorted(
        s + lat - (i if not math.isnan(i) else s)  # from the intended send time (coordinated omission)
        for i, s, lat in zip(req["intended"], req["start"], req["latency"], strict=True)
        if start <= s <= end and not math.isnan(lat)
    )
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    print(
        f"roll of {len(result['replaced'])} replicas under 80 req/s with a CPU hog: {result['duration_s']:.1f} s, "
        f"{len(req['start'])} requests, failed {sum(failed.values())}, shed {sum(shed.values())}, "
        f"p99 during the roll {p99 * 1000:.0f} ms"
    )


def test_every_replica_runs_the_new_version_after_the_roll(sb: Sandbox, trader_roll: TraderRoll) -> None:
    result, version = trader_roll.result, trader_roll.version
    assert result["landed"] is True and result["error"] is None, result
    old_pids = {i["pid"] for infos in result["before"].values() for i in infos}
    # every replica that ran when the roll began was replaced (or scaled in by the autoscaler meanwhile)
    assert {s["old_pid"] for s in result["replaced"]} <= old_pids
    assert not old_pids & {i["pid"] for infos in result["after"].values() for i in infos}
    for region, infos in result["after"].items():
        assert infos and all(i["version"] == version and i["pid"] not in old_pids for i in infos), (region, infos)
    assert sb.versions() == {r: [version] * len(v) for r, v in sb.versions().items()}
    assert all(len(v) == c["desired"] for v, c in zip(sb.versions().values(), sb.replicas().values(), strict=True))


def test_the_front_door_answers_with_the_new_version(sb: Sandbox, trader_roll: TraderRoll) -> None:
    seen = {httpx.get(f"{sb.front_door_url}/healthz", timeout=2.0).headers["x-drill-version"] for _ in range(20)}
    assert seen == {trader_roll.version}


def test_a_replica_killed_after_the_roll_respawns_at_the_new_version(sb: Sandbox, trader_roll: TraderRoll) -> None:
    killed = sb.kill_replicas(1, region=sb.regions[0])
    victim = killed["killed"][0]["pid"]
    assert killed["landed"] is True
    name = f"api-{sb.regions[0]}"
    deadline = time.monotonic() + 30
    while True:
        pids = set(sb.supervisor.pids(name))
        if victim not in pids and len(sb.versions()[sb.regions[0]]) == sb.supervisor.numprocesses(name):
            break
        assert time.monotonic() < deadline, f"no replacement for {victim}: {sb.replicas()}"
        time.sleep(0.2)
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    assert sb.versions()[sb.regions[0]] == [trader_roll.version] * len(pids)


def test_no_keep_alive_post_fails_in_a_closed_loop_while_rolling(sb: Sandbox, trader_roll: TraderRoll) -> None:
    """16 threads, each on its own keep-alive connection, POST orders back to back (no retries:
    a POST is not idempotent, so an httpx error here is a failed order)."""
    version = _new_version("loop")
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    errors: list[str] = []

    def loop() -> None:
        with httpx.Client(base_url=sb.front_door_url, timeout=5.0) as client:
            while not stop.is_set():
                body = {"symbol": "ROLL", "side": "buy", "price": "1.00", "qty": 1, "client_order_id": uuid.uuid4().hex}
                try:
                    r = client.post("/orders", json=body)
                except httpx.HTTPError as err:
                    with lock:
                        errors.append(repr(err))
                    continue
                with lock:
                    outcomes[f"{r.status_code} {r.headers.get('connection', 'keep-alive')}"] += 1

    threads = [threading.Thread(target=loop) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        result = sb.roll_out(version)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert result["landed"] is True, result
    assert errors == [], errors[:5]
    assert set(outcomes) <= {"201 keep-alive", "201 close"}, outcomes
    assert outcomes["201 close"] > 0, outcomes  # the drained replicas told their clients
    print(f"roll under a 16-thread keep-alive POST loop: {result['duration_s']:.1f} s, {dict(outcomes)}, failed 0")


def test_roll_out_rejects_a_version_that_is_not_a_plain_token(sb: Sandbox) -> None:
    with pytest.raises(ConfigError, match="version"):
        sb.roll_out("v2; rm -rf /")


def test_roll_out_rejects_a_budget_that_could_replace_nothing(sb: Sandbox) -> None:
    with pytest.raises(ConfigError, match="max_unavailable"):
        sb.roll_out("v2", max_unavailable=0, max_surge=0)


def test_roll_out_leaves_the_version_file_naming_what_runs(sb: Sandbox, trader_roll: TraderRoll) -> None:
    current = {v for vs in sb.versions().values() for v in vs}
    assert len(current) == 1
    assert api_version_file(sb.layout).read_text().strip() == current.pop()


def test_max_unavailable_two_replaces_two_replicas_per_step(sb: Sandbox, trader_roll: TraderRoll) -> None:
    result = sb.roll_out(_new_version("pair"), max_unavailable=2, max_surge=0)
    assert result["landed"] is True, result
    for region in sb.regions:
        steps = Counter(s["signalled_at"] for s in result["replaced"] if s["region"] == region)
        replicas = len(result["before"][region])
        assert sorted(steps.values(), reverse=True) == [2] * (replicas // 2) + [1] * (replicas % 2), (region, steps)


def test_the_default_roll_takes_the_manifests_surge_and_never_drops_below_the_regions_size(sb: Sandbox) -> None:
    """The staging manifests say maxSurge 1, maxUnavailable 0: a new replica is ready before an old
    one goes, so the ready replicas of the region being rolled never fall below its size (sampled
    independently, every 50 ms, through the replicas' own sockets)."""
    assert (sb.topology.rollout.max_surge, sb.topology.rollout.max_unavailable) == (1, 0)
    size = {r: sb.supervisor.numprocesses(f"api-{r}") for r in sb.regions}
    lowest = dict(size)
    highest = dict(size)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for region, counts in sb.replicas().items():
                lowest[region] = min(lowest[region], counts["ready"])
                highest[region] = max(highest[region], counts["desired"])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = sb.roll_out(_new_version("surge"))
    finally:
        done.set()
        sampler.join(timeout=5)
    assert result["landed"] is True and result["max_surge"] == 1 and result["max_unavailable"] == 0, result
    assert lowest == size, (lowest, size)
    assert all(highest[r] == size[r] + 1 for r in sb.regions), highest  # the surge replica was there
    assert all(len(r["new"]) >= 1 for r in result["replaced"]), result["replaced"]
