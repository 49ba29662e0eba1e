"""The autoscaling analyzer on synthetic replica and request series with known answers."""

import numpy as np
import pandas as pd
import pytest

from probes.autoscaling import analyze_autoscaling
from probes.latency import Requests


def replicas(ready: list[int], desired: list[int] | None = None) -> pd.DataFrame:
    """Two regions, one sample a second from t=0; ``ready``/``desired`` are totals split across regions."""
    desired = desired or ready
    rows = []
    for i, (r, d) in enumerate(zip(ready, desired, strict=True)):
        rows.append({"t": float(i), "region": "a", "desired": d - d // 2, "ready": r - r // 2})
        rows.append({"t": float(i), "region": "b", "desired": d // 2, "ready": r // 2})
    return pd.DataFrame(rows)


def test_times_to_first_replica_and_to_capacity() -> None:
    s = replicas([2, 2, 2, 2, 3, 3, 4, 4, 4, 4], [2, 2, 2, 4, 4, 4, 4, 4, 4, 4])
    r = analyze_autoscaling(s, load_step_at=2.5, target=4)
    assert r.replicas_before == 2 and r.first_new_ready_s == pytest.approx(1.5) and r.capacity_s == pytest.approx(3.5)
    assert r.peak_ready == 4 and r.worst_p95_ms is None and r.sla_held is None


def test_capacity_never_reached_is_not_a_number() -> None:
    r = analyze_autoscaling(replicas([2, 2, 3, 3, 3]), load_step_at=0.5, target=4)
    assert r.capacity_s is None and r.first_new_ready_s == pytest.approx(1.5)


def test_sla_during_scale_out_uses_the_worst_window() -> None:
    intended = np.arange(0, 10, 0.01)
    latency = np.where((intended >= 4) & (intended < 5), 0.300, 0.020)
    n = intended.size
    req = Requests(intended, intended.copy(), latency, np.full(n, 200, dtype=np.int16), np.zeros(n, dtype=bool))
    s = replicas([2] * 3 + [4] * 7)
    r = analyze_autoscaling(replicas([2, 2, 2, 2, 2, 2, 4, 4, 4, 4]), 2.0, 4, requests=req, window_s=2.0)
    assert r.worst_p95_ms == pytest.approx(300, rel=0.01) and r.sla_held is False
    ok = analyze_autoscaling(s, 5.5, 4, requests=req, window_s=2.0)
    assert ok.sla_held is True


def test_scale_in_and_flapping() -> None:
    desired = [2, 2, 4, 4, 3, 4, 4, 2, 2, 2]
    r = analyze_autoscaling(replicas(desired, desired), load_step_at=1.5, target=4, load_drop_at=6.5)
    assert r.scale_in_s == pytest.approx(0.5)
    assert r.direction_changes == 2  # after the step: down, up, down
