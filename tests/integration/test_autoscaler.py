"""The sandbox's HPA-like autoscaler, for real: load raises replicas, quiet lowers them again."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from drillbit.core.clock import Clock
from drillbit.probes.autoscaling import analyze_autoscaling
from drillbit.probes.replicas import ReplicasSampler, load_replicas
from drillbit.targets.sandbox import sandbox

pytestmark = pytest.mark.slow

TOPOLOGY = """
regions:
  - {name: region-a, api_replicas: 1}
  - {name: region-b, api_replicas: 1}
autoscaling:
  {enabled: true, max_replicas: 3, metric: cpu, target_cpu_percent: 15, scale_down_stabilization_s: 4, interval_s: 0.5}
"""


def _hammer(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            body = {"symbol": "AUTO", "side": "buy", "price": "1", "qty": 1, "client_order_id": uuid.uuid4().hex}
            try:
                client.post("/orders", json=body)
            except httpx.HTTPError:
                continue


def test_load_scales_replicas_out_and_quiet_scales_them_back_in(tmp_path: Path) -> None:
    topo = tmp_path / "topology.yaml"
    topo.write_text(TOPOLOGY)
    sb = sandbox.up(topo, tmp_path / ".drill", report=print)
    try:
        assert sb.replicas() == {"region-a": {"desired": 1, "ready": 1}, "region-b": {"desired": 1, "ready": 1}}
        clock = Clock()
        sampler = ReplicasSampler(sb, tmp_path / "run", clock=clock, interval=0.5).start()
        time.sleep(1.2)
        stop = threading.Event()
        workers = [threading.Thread(target=_hammer, args=(sb.front_door_url, stop)) for _ in range(6)]
        step_at = clock.now()
        for w in workers:
            w.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                counts = sb.replicas()
                if any(c["desired"] > 1 and c["ready"] == c["desired"] for c in counts.values()):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"no scale-out under load: {sb.replicas()}")
        finally:
            stop.set()
            drop_at = clock.now()
            for w in workers:
                w.join()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(c["desired"] > 1 for c in sb.replicas().values()):
            time.sleep(0.5)
        assert all(c["desired"] == 1 for c in sb.replicas().values()), sb.replicas()
        time.sleep(1.0)
        sampler.stop()
        decisions = [json.loads(line) for line in (sb.layout.logs / "autoscaler.jsonl").read_text().splitlines()]
        assert len(decisions) >= 2  # at least one scale-out and one scale-in were recorded
        # the analyzer's view of the same episode agrees with the autoscaler's own record
        first_up = min(d["t"] for d in decisions if d["to"] > d["from"])
        result = analyze_autoscaling(load_replicas(tmp_path / "run"), step_at, target=3, load_drop_at=drop_at)
        assert result.replicas_before == 2 and result.first_new_ready_s is not None
        assert result.first_new_ready_s >= first_up - step_at - 0.01  # ready only after the decision
        assert result.first_new_ready_s <= first_up - step_at + 5.0  # and within seconds of it
        assert result.scale_in_s is not None
    finally:
        sandbox.down(tmp_path / ".drill", report=print)
