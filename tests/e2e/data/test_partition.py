"""Inter-region network faults on the data drills' sandbox (links enabled: tests/e2e/data/conftest.py):
the region-partition drill, asynchronous then synchronous replication, on the same sandbox (Patroni's synchronous_mode
is dynamic configuration). Ground truth read around the analyzers: the links themselves (a
request across each cut link fails during the drill, every link answers after), the primary's
own answer, and the orders table for the lost acknowledged writes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.core.results import MEASUREMENTS, Measurements, read_model
from drillbit.plan import DrillPlan, load_plan
from drillbit.runner import DrillResult, RunOptions, run_drill
from drillbit.targets.sandbox import loopback
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.links import probe, read_specs
from drillbit.targets.sandbox.network import Network
from drillbit.targets.sandbox.render import RESTAPI_USER
from drillbit.targets.sandbox.sandbox import Sandbox
from tests.e2e.data.interrupt import sigint_when
from tests.e2e.rpo_truth import lost_by_the_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS = ROOT / "experiments"


def _plan(region: str) -> DrillPlan:
    plan = load_plan(EXPERIMENTS / "region-partition.yaml")
    exp = json.loads(json.dumps(plan.experiment))
    exp["method"][0]["provider"]["arguments"]["region"] = region  # the primary's region, whichever it is now
    plan = dataclasses.replace(plan, experiment=exp)
    return dataclasses.replace(plan, settings=plan.settings.model_copy(update={"baseline_s": 3.0, "cooldown_s": 3.0}))


class _CutWatcher:
    """Polls every link from outside the drill: which ones refused a request while the drill ran."""

    def __init__(self, sb: Sandbox) -> None:
        self.specs = read_specs(sb.layout.root)
        self.refused: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for spec in self.specs:
                if probe(spec, timeout=1.0) is None and probe(spec, timeout=1.0, direct=True) is not None:
                    self.refused.add(spec.name)

    def __enter__(self) -> _CutWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _drill(sb: Sandbox, out: Path) -> tuple[DrillResult, Measurements, set[str]]:
    primary = sb.primary()
    assert primary is not None, sb.status()
    started = time.monotonic()
    with _CutWatcher(sb) as watcher:
        result = run_drill(_plan(primary), RunOptions(state_dir=sb.layout.state_dir, out=out, tty=False, say=print))
    print(f"region-partition: exit {result.exit_code} in {time.monotonic() - started:.0f} s")
    return result, read_model(result.run_dir / MEASUREMENTS, Measurements), watcher.refused


def _healed(sb: Sandbox) -> None:
    assert Network(sb).shaped() == {}
    assert all(probe(spec) is not None for spec in read_specs(sb.layout.root))  # across every link again
    assert SandboxTarget(sb).whole(), sb.status()


def _check(sb: Sandbox, result: DrillResult, m: Measurements, refused: set[str], *, sync: bool) -> dict[str, Any]:
    partition = next(f for f in m.faults if f.action.endswith("partition_region"))
    assert partition.landed, partition
    d = partition.detail
    cut = set(d["cut"])
    assert len(cut) == 7 and cut <= refused, (cut, refused)  # seen cut from outside the drill too
    assert d["synchronous_mode"] is sync, d
    assert d["demoted_after_s"] is not None and d["promoted_after_s"] is not None, d
    assert d["new_primary"] not in (None, d["region"]), d
    _healed(sb)
    assert m.rpo is not None, m.unmeasured
    truth = lost_by_the_database(result, sb.dsn)
    assert m.rpo.lost_seqs == truth, (m.rpo, truth)
    figures = {"lost": m.rpo.lost, "lost_after_fault": m.rpo.lost_after_fault, "split_brain": m.rpo.split_brain,
               "indeterminate": m.rpo.indeterminate, "demoted_after_s": d["demoted_after_s"],
               "promoted_after_s": d["promoted_after_s"], "two_primaries_s": d["two_primaries_s"],
               "exit": result.exit_code}  # fmt: skip
    print(f"region-partition ({'sync' if sync else 'async'}): {json.dumps(figures)}")
    return figures


def test_partition_asynchronous_demotes_the_isolated_primary_and_counts_what_it_lost(
    data_sandbox: Sandbox, tmp_path: Path
) -> None:
    result, m, refused = _drill(data_sandbox, tmp_path / "runs")
    figures = _check(data_sandbox, result, m, refused, sync=False)
    # demoted after losing the witness, promoted once the leader key expired (the TTL)
    assert figures["demoted_after_s"] < figures["promoted_after_s"] <= data_sandbox.topology.patroni.ttl + 15, figures


def test_partition_synchronous_loses_no_acknowledged_write(data_sandbox: Sandbox, tmp_path: Path) -> None:
    password = json.loads(data_sandbox.layout.secrets_file.read_text())["restapi"]
    with loopback.client(timeout=5) as client:  # Patroni's dynamic configuration: no restart, no new sandbox
        answer = client.patch(f"{data_sandbox._restapi(data_sandbox.regions[0])}/config",
                              json={"synchronous_mode": True}, auth=(RESTAPI_USER, password))  # fmt: skip
        assert answer.status_code == 200, answer.text

    def sync_standby() -> bool:
        return any(m.get("role") == "sync_standby" for m in data_sandbox.cluster())

    deadline = time.monotonic() + 30
    while not sync_standby():
        assert time.monotonic() < deadline, data_sandbox.cluster()
        time.sleep(0.5)
    result, m, refused = _drill(data_sandbox, tmp_path / "runs")
    figures = _check(data_sandbox, result, m, refused, sync=True)
    assert figures["lost"] == 0 and not figures["split_brain"], figures


def test_degrade_and_isolate_witness_land_and_a_later_heal_clears_them(data_sandbox: Sandbox) -> None:
    """As a later invocation heals what a crashed drill left: the faults' state is in the state dir."""
    target = SandboxTarget.attach(data_sandbox.layout.state_dir)
    region = data_sandbox.regions[1]
    degraded = target.degrade_link(region, latency_ms=120, jitter_ms=20)
    assert degraded["landed"] and degraded["measured_added_latency_ms"] >= 80, degraded
    throttled = target.degrade_link(region, bandwidth_kbps=64)
    assert throttled["landed"] and throttled["measured_kbps"] <= 96, throttled
    isolated = target.isolate_witness()
    assert isolated["landed"] and isolated["witness_up"], isolated
    etcd = [s for s in read_specs(data_sandbox.layout.root) if s.service == "etcd"]
    assert etcd and all(probe(s, timeout=1.0) is None for s in etcd)
    healed = SandboxTarget.attach(data_sandbox.layout.state_dir).heal()  # another process's view: from the files
    assert healed["landed"] and any(r.startswith("links:") for r in healed["restored"]), healed
    _healed(data_sandbox)


def test_sigint_during_the_partition_heals_it(data_sandbox: Sandbox, tmp_path: Path) -> None:
    primary = data_sandbox.primary()
    assert primary is not None
    exp = yaml.safe_load((EXPERIMENTS / "region-partition.yaml").read_text())
    exp["method"][0]["provider"]["arguments"]["region"] = primary
    # interrupted once the cut is in force (its state file says so), 2 s into it
    code, output = sigint_when(data_sandbox, exp, tmp_path, lambda: bool(Network(data_sandbox).shaped()),
                               windows_s=3, settle_s=2.0, poll_s=0.2)  # fmt: skip
    assert code == 3, output[-3000:]
    _healed(data_sandbox)
