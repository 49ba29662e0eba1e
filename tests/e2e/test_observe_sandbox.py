"""``drill observe`` on the sandbox while a person (here: the test) kills the database primary by hand."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drillbit.core.results import MEASUREMENTS, Measurements, read_model
from drillbit.observe import ObserveOptions, observe
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox
from tests.e2e.rpo_truth import lost_by_the_database

pytestmark = pytest.mark.slow


def test_observing_a_manual_primary_kill_measures_rto_and_reads_the_heartbeat_back(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    old = sandbox_env.primary()
    killed: dict[str, object] = {}
    timer = threading.Timer(4.0, lambda: killed.update(sandbox_env.failover_db("kill-postgres")))
    timer.start()
    try:
        result = observe(ObserveOptions(env="sandbox", state_dir=sandbox_env.layout.state_dir, until_recovered=True,
                                        cooldown_s=2.0, duration_s=180, out=tmp_path, tty=False))  # fmt: skip
    finally:
        timer.cancel()
    m = read_model(result.run_dir / MEASUREMENTS, Measurements)
    assert killed.get("old_primary") == old and killed.get("new_primary") not in (None, old)
    assert m.fault_source == "detected" and m.faults == []  # drillbit injected nothing
    assert m.rto is not None and m.rto.recovered and 0.5 < m.rto.rto_s < 60, m.rto
    assert m.rpo is not None, m.unmeasured
    assert m.rpo.writes > 20
    assert m.rpo.lost_seqs == lost_by_the_database(result, sandbox_env.dsn)
    assert m.replicas is not None
    SandboxTarget(sandbox_env).heal()
    assert SandboxTarget(sandbox_env).whole()
