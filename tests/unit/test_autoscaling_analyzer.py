"""The autoscaling analyzer on synthetic replica and request series with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chaoslib.exceptions import ActivityFailed
from chaoslib.provider.python import run_python_activity, validate_python_activity

from drillbit.core.rundir import EVENTS, REPLICAS, REPLICAS_SCHEMA, REQUEST_SCHEMA, REQUESTS_DIR
from drillbit.probes.autoscaling import (
    CapacityNotReached,
    analyze_autoscaling,
    autoscaling_report,
    time_to_capacity,
    windowed_percentile,
)
from drillbit.probes.latency import Requests


def ctk(module: str, func: str, **arguments: object) -> object:
    """Run a probe the way chaostoolkit-lib runs a python provider (validated first)."""
    activity = {"type": "probe", "name": func,
                "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}  # fmt: skip
    validate_python_activity(activity)
    return run_python_activity(activity, {}, {})


def replicas(ready: list[int], desired: list[int] | None = None) -> pd.DataFrame:
    """Two regions, one sample a second from t=0; ``ready``/``desired`` are totals split across regions."""
    desired = desired or ready
    rows = []
    for i, (r, d) in enumerate(zip(ready, desired, strict=True)):
        rows.append({"t": float(i), "region": "a", "desired": d - d // 2, "ready": r - r // 2})
        rows.append({"t": float(i), "region": "b", "desired": d // 2, "ready": r // 2})
    return pd.DataFrame(rows)


def requests(intended: np.ndarray, start: np.ndarray, latency: np.ndarray, status: int = 200) -> pd.DataFrame:
    """Request records in REQUEST_SCHEMA shape."""
    n = intended.size
    return pd.DataFrame(
        {
            "name": ["GET /book/{symbol}"] * n,
            "intended": intended,
            "start": start,
            "latency": latency,
            "status": np.full(n, status, dtype=np.int16),
            "error": [None if status < 400 else "http"] * n,
            "worker": np.zeros(n, dtype=np.int16),
        }
    )


def test_times_to_first_replica_and_to_capacity() -> None:
    s = replicas([2, 2, 2, 2, 3, 3, 4, 4, 4, 4], [2, 2, 2, 4, 4, 4, 4, 4, 4, 4])
    r = analyze_autoscaling(s, load_step_at=2.5, target=4)
    assert r.replicas_before == 2 and r.desired_before == 2
    assert r.first_new_ready_s == pytest.approx(1.5) and r.capacity_s == pytest.approx(3.5)
    assert r.peak_ready == 4 and r.worst_p95_ms is None and r.sla_held is None and r.interval_s == 1.0


def test_capacity_never_reached_is_not_a_number() -> None:
    r = analyze_autoscaling(replicas([2, 2, 3, 3, 3]), load_step_at=0.5, target=4)
    assert r.capacity_s is None and r.first_new_ready_s == pytest.approx(1.5) and r.peak_ready == 3
    flat = analyze_autoscaling(replicas([2, 2, 2]), load_step_at=0.5, target=4)
    assert flat.first_new_ready_s is None and flat.capacity_s is None


def test_windowed_p95_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(3)
    key = rng.uniform(0, 60, 20_000)
    values = rng.exponential(0.05, key.size)
    got = windowed_percentile(key, values, 10.0, 40.0, 5.0)
    starts = np.arange(10.0, 35.0 + 1e-9, 2.5)
    assert [w for w, _, _ in got] == pytest.approx(list(starts))
    for (w, p95, n), w0 in zip(got, starts, strict=True):
        m = (key >= w0) & (key < w0 + 5.0)
        assert n == m.sum() and p95 == pytest.approx(np.percentile(values[m], 95)) and w == pytest.approx(w0)
    custom = windowed_percentile(key, values, 10.0, 40.0, 5.0, percentile=lambda x: float(x.max()))
    assert all(c >= p for (_, c, _), (_, p, _) in zip(custom, got, strict=True))
    assert windowed_percentile(key, values, 10.0, 40.0, 5.0, min_count=10**6) == []


def test_a_stall_during_scale_out_breaks_the_sla_even_when_uncorrected_latency_looks_fine() -> None:
    intended = np.arange(0, 10, 0.01)
    # between 4 and 5 s the generator's requests were held back until 5 s (coordinated omission),
    # and each then took a fast 20 ms: corrected latency counts the wait
    start = np.where((intended >= 4) & (intended < 5), 5.0, intended)
    latency = np.full(intended.size, 0.020)
    req = requests(intended, start, latency)
    r = analyze_autoscaling(replicas([2] * 6 + [4] * 4), 2.0, 4, requests=req, window_s=2.0, sla_p95_ms=100.0)
    assert r.capacity_s == pytest.approx(4.0)
    held_back = 5.0 + 0.020 - intended[(intended >= 4) & (intended < 5)]
    assert r.worst_p95_ms == pytest.approx(np.percentile(np.concatenate([held_back, np.full(100, 0.02)]), 95) * 1000)
    assert r.sla_held is False and r.windows_judged == 3 and r.error_rate_scale_out == 0.0
    calm = analyze_autoscaling(replicas([2] * 6 + [4] * 4), 6.0, 4, requests=req, window_s=2.0)
    assert calm.sla_held is True and calm.worst_p95_ms == pytest.approx(20.0)


def test_the_sla_window_also_accepts_latency_records_and_counts_errors() -> None:
    n = 1000
    intended = np.arange(n) * 0.01
    req = Requests(intended, intended.copy(), np.full(n, 0.3), np.full(n, 200, dtype=np.int16), np.zeros(n, dtype=bool))
    r = analyze_autoscaling(replicas([2, 2, 2, 2, 2, 2, 4, 4, 4, 4]), 2.0, 4, requests=req, window_s=2.0)
    assert r.worst_p95_ms == pytest.approx(300.0) and r.sla_held is False
    failing = requests(intended, intended, np.full(n, 0.01), status=503)
    r = analyze_autoscaling(replicas([2, 2, 2, 2, 4]), 1.0, 4, requests=failing, window_s=2.0)
    assert r.worst_p95_ms is None and r.sla_held is None and r.error_rate_scale_out == 1.0


def test_scale_in_and_flapping() -> None:
    desired = [2, 2, 4, 4, 3, 4, 4, 2, 2, 2]
    r = analyze_autoscaling(replicas(desired, desired), load_step_at=1.5, target=4, load_drop_at=6.5)
    assert r.scale_in_s == pytest.approx(0.5) and r.scale_in_ready_s == pytest.approx(0.5)
    assert r.direction_changes == 2  # after the step: down, up, down
    assert r.flaps == 1  # the scale-down at t=4 while the load was still high
    # ready lags desired by two samples on the way down; desired bounces back up once after the drop
    ready = [2, 2, 2, 4, 4, 4, 4, 4, 4, 2, 2, 2]
    desired = [2, 2, 4, 4, 4, 4, 4, 2, 3, 2, 2, 2]
    r = analyze_autoscaling(replicas(ready, desired), load_step_at=1.5, target=4, load_drop_at=6.5)
    assert r.scale_in_s == pytest.approx(0.5) and r.scale_in_ready_s == pytest.approx(2.5)
    assert r.flaps == 1 and r.direction_changes == 2


def test_scale_in_to_an_explicit_minimum() -> None:
    desired = [3, 3, 6, 6, 6, 4, 3, 2, 2]
    r = analyze_autoscaling(replicas(desired, desired), load_step_at=1.5, target=6, load_drop_at=4.5, min_replicas=2)
    assert r.scale_in_s == pytest.approx(2.5) and r.min_replicas == 2
    default = analyze_autoscaling(replicas(desired, desired), load_step_at=1.5, target=6, load_drop_at=4.5)
    assert default.scale_in_s == pytest.approx(1.5) and default.min_replicas == 3


def test_a_readiness_blip_at_the_step_is_not_a_new_replica() -> None:
    """Issue 12, case 6: one replica's readiness probe misses at the step sample and answers 1 s later; no
    scaling at all. Counted as "more ready than at the step", that was a new replica after 0.8 s."""
    ready = [4, 4, 3, 4, 4, 4, 4, 4]
    r = analyze_autoscaling(replicas(ready, [4] * 8), load_step_at=2.2, target=6)
    assert r.scale_out_s is None and r.first_new_ready_s is None and r.identified is False


def test_a_new_replica_is_a_new_identity_after_desired_rose() -> None:
    """A killed replica replaced by the supervisor comes back as a new pid without any scaling: not a
    scale-out. The autoscaler raises desired at t=4; the first new identity is ready at t=6."""
    rows = []
    for t in range(9):
        ids = ["101", "102"] if t < 3 else ["101", "103"]  # 102 killed and replaced at t=3: desired unchanged
        if t >= 6:
            ids = [*ids, "104"]
        rows.append({"t": float(t), "region": "a", "desired": 2 if t < 4 else 3, "ready": len(ids), "ready_ids": ids})
    r = analyze_autoscaling(pd.DataFrame(rows), load_step_at=2.5, target=3)
    assert r.identified is True and r.scale_out_s == pytest.approx(1.5)
    assert r.first_new_ready_s == pytest.approx(3.5)  # 103 (t=3) is new, but came before the autoscaler acted
    # the same without identities: counted above the most ever ready before the step
    counted = analyze_autoscaling(pd.DataFrame(rows).drop(columns="ready_ids"), load_step_at=2.5, target=3)
    assert counted.identified is False and counted.first_new_ready_s == pytest.approx(3.5)


def test_no_sample_before_the_step_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the load step"):
        analyze_autoscaling(replicas([2, 3]), load_step_at=-1.0, target=3)
    with pytest.raises(ValueError, match="no replica samples"):
        analyze_autoscaling(replicas([]), load_step_at=0.0, target=3)


def _run_dir(tmp_path: Path, ready: list[int], events: list[dict[str, object]]) -> str:
    (tmp_path / "samples").mkdir()
    frame = replicas(ready).astype({"desired": "int32", "ready": "int32"}).assign(ready_ids=None)
    table = pa.Table.from_pandas(frame, schema=REPLICAS_SCHEMA, preserve_index=False)
    pq.write_table(table, tmp_path / REPLICAS)
    (tmp_path / EVENTS).write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(tmp_path)


def test_probe_functions_over_a_run_directory(tmp_path: Path) -> None:
    run = _run_dir(
        tmp_path, [2, 2, 2, 3, 4, 4, 4, 2, 2], [{"t": 1.5, "kind": "load.step"}, {"t": 6.5, "kind": "load.drop"}]
    )
    (tmp_path / REQUESTS_DIR).mkdir()
    intended = np.arange(0, 9, 0.01)
    req = requests(intended, intended, np.full(intended.size, 0.01))
    pq.write_table(pa.Table.from_pandas(req, schema=REQUEST_SCHEMA, preserve_index=False),
                   tmp_path / REQUESTS_DIR / "0.parquet")  # fmt: skip
    assert time_to_capacity(run, target_replicas=4) == pytest.approx(2.5)
    assert ctk("drillbit.probes.autoscaling", "time_to_capacity", run_dir=run, target_replicas=4) == pytest.approx(2.5)
    report = autoscaling_report(run, target_replicas=4)
    assert json.loads(json.dumps(report)) == report
    assert report["scale_in_s"] == pytest.approx(0.5) and report["sla_held"] is True
    assert report["worst_p95_ms"] == pytest.approx(10.0)
    with pytest.raises(CapacityNotReached, match="peak 4"):
        time_to_capacity(run, target_replicas=5)
    with pytest.raises(ActivityFailed, match="CapacityNotReached"):
        ctk("drillbit.probes.autoscaling", "time_to_capacity", run_dir=run, target_replicas=5)


def test_probe_functions_raise_without_a_load_step_or_samples(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, [2, 3], [{"t": 0.5, "kind": "phase"}])
    with pytest.raises(ValueError, match=r"load\.step"):
        time_to_capacity(run, target_replicas=3)
    with pytest.raises(FileNotFoundError):
        time_to_capacity(str(tmp_path / "nowhere"), target_replicas=3, load_step_at=0.5)


def test_a_scale_out_as_short_as_one_window_is_judged_at_epoch_times() -> None:
    """np.arange(lo, lo + 1e-9) is empty at epoch scale: the one window due was silently not judged."""
    lo = 1_800_000_010.0
    key = lo + np.arange(0, 5, 0.01)
    windows = windowed_percentile(key, np.full(key.size, 0.2), lo, lo + 5.0, 5.0)
    assert len(windows) == 1 and windows[0][2] == 500 and windows[0][1] == pytest.approx(0.2)
