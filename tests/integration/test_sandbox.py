"""The sandbox, for real: etcd + Patroni + PostgreSQL + supervised API replicas on loopback.

One sandbox serves the module (start-up costs seconds); each test leaves it whole again.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from drillbit.targets.sandbox import procs, sandbox
from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow


@pytest.fixture
def sb(sandbox_env: Sandbox) -> Sandbox:
    return sandbox_env


def _order(side: str = "buy", price: str = "10.00", qty: int = 1, symbol: str = "SBX") -> dict[str, object]:
    return {"symbol": symbol, "side": side, "price": price, "qty": qty, "client_order_id": uuid.uuid4().hex}


def _post(url: str, body: dict[str, object], timeout: float = 2.0) -> httpx.Response | None:
    """One order on a fresh connection (so a dead replica's keep-alive cannot mask anything)."""
    try:
        return httpx.post(f"{url}/orders", json=body, timeout=timeout)
    except httpx.HTTPError:
        return None


def _wait_writes(url: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        r = _post(url, _order())
        if r is not None and r.status_code == 201:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"writes did not resume within {timeout} s")


def _settle(sb: Sandbox) -> None:
    """Every region restored, every replica ready, region-a primary: what each test starts from."""
    for region in sb.regions:
        if sb.replicas()[region]["desired"] == 0 or not sb.node_healthy(region):
            sb.restore_region(region)
    _wait_writes(sb.front_door_url, 60)


def test_up_reports_a_primary_and_every_replica_ready(sb: Sandbox) -> None:
    """(The session's sandbox: earlier drills may have moved the primary to either region.)"""
    status = sb.status()
    primary = status["primary"]
    assert primary in sb.regions
    assert status["replicas"] == {"region-a": {"desired": 2, "ready": 2}, "region-b": {"desired": 2, "ready": 2}}
    roles = sorted((m["name"], m["role"]) for m in status["database_nodes"])
    assert roles == sorted((r, "leader" if r == primary else "replica") for r in sb.regions)
    assert status["front_door_ready"] is True


def test_front_door_spreads_requests_over_replicas_of_both_regions(sb: Sandbox) -> None:
    seen = set()
    for _ in range(80):
        r = httpx.get(f"{sb.front_door_url}/healthz", timeout=2.0)
        assert r.status_code == 200
        seen.add(r.headers["x-drill-replica"].split("/")[0])
    assert seen == {"region-a", "region-b"}


def test_orders_placed_through_the_front_door_match(sb: Sandbox) -> None:
    sym = "M" + uuid.uuid4().hex[:6].upper()
    buy = _post(sb.front_door_url, _order("buy", "50.00", 3, sym))
    sell = _post(sb.front_door_url, _order("sell", "49.00", 2, sym))
    assert buy is not None and buy.status_code == 201
    assert sell is not None and sell.status_code == 201
    assert sell.json()["status"] == "filled"
    assert [(f["price"], f["qty"]) for f in sell.json()["fills"]] in ([("50.00000000", 2)], [("50.00", 2)], [("50", 2)])
    assert httpx.get(f"{sb.front_door_url}/orders/{buy.json()['id']}").json()["remaining"] == 1


def test_a_killed_replica_is_restarted_and_the_front_door_keeps_serving(sb: Sandbox) -> None:
    _settle(sb)
    before = set(sb.supervisor.pids("api-region-a"))
    result = sb.kill_replicas(1, region="region-a")
    victim = result["killed"][0]["pid"]
    assert victim in before
    assert result["landed"] is True
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    failures = 0
    for _ in range(50):  # about 2.5 s of writes straight after the kill, each on a new connection
        r = _post(sb.front_door_url, _order())
        failures += r is None or r.status_code != 201
        time.sleep(0.05)
    assert failures == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = set(sb.supervisor.pids("api-region-a"))
        if len(pids) == 2 and victim not in pids and sb.replicas()["region-a"]["ready"] == 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"replica not restarted: {sb.replicas()}")


def test_killing_the_primary_node_promotes_the_other_and_writes_resume(sb: Sandbox) -> None:
    _settle(sb)
    old = sb.primary()
    result = sb.failover_db("kill-node", timeout=60)
    assert result["old_primary"] == old and result["new_primary"] not in (None, old)
    assert not procs.tagged(sb.state.id, f"{old}/db"), "the killed node's processes must be gone"
    outage = _wait_writes(sb.front_door_url, 30)
    assert outage < 30
    sb.restore_region(old)
    members = {m["name"]: m for m in sb.cluster()}
    assert members[old]["role"] == "replica"


def test_switchover_moves_the_primary_and_writes_continue(sb: Sandbox) -> None:
    _settle(sb)
    old = sb.primary()
    result = sb.failover_db("switchover", timeout=60)
    assert result["new_primary"] not in (None, old)
    assert _wait_writes(sb.front_door_url, 20) < 20


def test_losing_a_region_keeps_the_service_up_from_the_other(sb: Sandbox) -> None:
    _settle(sb)
    lost = sb.primary()
    assert lost is not None
    survivor = next(r for r in sb.regions if r != lost)
    sb.kill_region(lost)
    assert not procs.tagged(sb.state.id, prefix=f"{lost}/")
    assert sb.replicas()[lost] == {"desired": 0, "ready": 0}
    _wait_writes(sb.front_door_url, 60)
    assert sb.primary() == survivor
    r = httpx.get(f"{sb.front_door_url}/healthz")
    assert r.headers["x-drill-replica"].startswith(survivor)
    sb.restore_region(lost)
    assert sb.replicas()[lost]["ready"] == 2


def test_status_works_from_another_process(sb: Sandbox) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "drillbit.cli", "env", "status", "--state-dir", str(sb.layout.state_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(out.stdout)
    assert status["id"] == sb.state.id and status["primary"] in sb.regions


def _listening(ports: list[int]) -> list[int]:
    return [p for p in ports if procs.port_in_use(p)]


def test_stale_state_is_cleaned_on_up_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / ".drill"
    first = sandbox.up(state_dir=state, report=print)
    ports = first.state.port_map.all()
    # crash: the supervisor dies without cleaning up; its children are orphaned but alive
    psutil.Process(first.state.supervisor_pid).kill()
    time.sleep(0.5)
    assert procs.tagged(first.state.id), "orphans should still be running before the clean-up"
    said: list[str] = []
    second = sandbox.up(state_dir=state, report=said.append)
    assert any("stale sandbox" in s and first.state.id in s for s in said)
    assert not procs.tagged(first.state.id)
    assert second.state.id != first.state.id
    ports += second.state.port_map.all()
    sandbox.down(state, report=print)
    assert not procs.tagged(second.state.id)
    assert _listening(ports) == []
    assert not (state / "sandbox").exists()
    assert not (state / "sandbox.lock").exists()


def test_no_secret_reaches_a_log_the_state_or_the_status(sb: Sandbox) -> None:
    import json

    secrets = json.loads(sb.layout.secrets_file.read_text()).values()
    assert oct(sb.layout.secrets_file.stat().st_mode & 0o777) == "0o600"
    assert oct(sb.layout.pgpass.stat().st_mode & 0o777) == "0o600"
    exposed = [sb.layout.state_file, sb.layout.circus_ini, *sb.layout.logs.iterdir()]
    for path in exposed:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {path}"
    status = json.dumps(sb.status())
    assert not any(secret in status for secret in secrets)
