"""This repository's own resilience gate, written with drillbit's pytest plugin: the example a team
copies (``drill init`` writes it into a new project). Each experiment runs once under load on the
target (``--drill-env``, default the sandbox) and each SLA it is judged by is its own test.

    pytest tests/resilience --drill-env sandbox --junitxml=gate.xml
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.drill(experiment="pod-kill.yaml")
def test_pod_kill() -> None:
    """One API replica killed, then half of them: restarted, no outage, RTO and latency SLAs."""


@pytest.mark.drill(experiment="rolling-update.yaml")
def test_rolling_update() -> None:
    """Every replica rolled to a new version under load: zero failed requests (R1.4)."""


def test_a_gate_may_also_assert_on_the_measurements(drill: Any) -> None:
    """The same pod-kill drill (run once per session): a gate may hold it to more than its SLAs."""
    result = drill.run("pod-kill.yaml")
    assert result.verdict("rto").passed, result.verdict("rto").message()
    after = result.measurements.latency.phases["after"]
    assert after.p95_ms < 100 and after.errors == 0, after
