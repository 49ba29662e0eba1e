"""A soak's drift (drillbit.probes.drift) on run directories written here with a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit.core.measurements import DriftMeasurement
from drillbit.core.rundir import HARNESS, HARNESS_REMOTE, HARNESS_SCHEMA, read_harness
from drillbit.load.recording import RequestSink
from drillbit.probes.drift import (
    MB,
    MEMORY_SLOPE_METRIC,
    P95_RATIO_METRIC,
    P95_SLOPE_METRIC,
    analyze_drift,
    drift_reading,
    fit_line,
    warmup_s,
    window_s,
)

T0 = 1_800_000_000.0
RNG_SEED = 19


def _harness(run: Path, series: dict[int, np.ndarray], *, start: float = T0, interval: float = 1.0,
             role: str = "worker", remote: bool = False, name: str = HARNESS) -> None:  # fmt: skip
    """One row per sample of each pid's RSS series (bytes), ``interval`` apart from ``start``."""
    cols: dict[str, list[object]] = {n: [] for n in HARNESS_SCHEMA.names}
    for pid, rss in series.items():
        for i, value in enumerate(rss):
            for k, v in (("t", start + i * interval), ("role", role), ("worker", 1 if remote else None), ("pid", pid),
                         ("host", "loadgen-2" if remote else "here"), ("remote", remote),
                         ("rss_bytes", int(value)), ("cpu_percent", 20.0), ("busy_percent", 25.0)):  # fmt: skip
                cols[k].append(v)
    path = run / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols, schema=HARNESS_SCHEMA), path)


def _rss(minutes: float, mb_per_min: float, noise_mb: float = 0.0, base_mb: float = 80.0) -> np.ndarray:
    """An RSS series sampled each second: a line of ``mb_per_min`` plus Gaussian noise."""
    t = np.arange(int(minutes * 60))
    noise = np.random.default_rng(RNG_SEED).normal(0.0, noise_mb, len(t))
    return (base_mb + mb_per_min * t / 60 + noise) * MB


def _requests(run: Path, minutes: float, rate: float, p95_ms: tuple[float, float]) -> None:
    """Open-model records at ``rate``/s whose p95 moves linearly from p95_ms[0] to p95_ms[1]: each second's
    latencies are a ramp of 1..100 % of a base, so 95 % of them lie at or below 0.95 x base."""
    sink = RequestSink(run, 0)
    n = int(minutes * 60 * rate)
    for i in range(n):
        intended = T0 + i / rate
        frac = i / max(n - 1, 1)
        base_s = (p95_ms[0] + (p95_ms[1] - p95_ms[0]) * frac) / 0.95 / 1000
        latency = base_s * ((i % 100) + 1) / 100
        sink.add("GET /ping", intended, intended, latency, 200, None)
    sink.close()


def _by_name(m: DriftMeasurement) -> dict[str, float | None]:
    return {p.name: p.slope_mb_per_min for p in m.processes}


def test_a_least_squares_line_recovers_an_exact_slope_at_epoch_times() -> None:
    t = T0 + np.arange(100.0)
    fit = fit_line(t, 3.0 + 0.5 * (t - T0))
    assert fit.slope == pytest.approx(0.5, abs=1e-9) and fit.r2 == pytest.approx(1.0) and fit.n == 100


def test_a_line_through_one_point_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two points"):
        fit_line(np.array([T0]), np.array([1.0]))


def test_an_injected_slope_of_2_mb_per_min_is_measured_within_0_05(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(60, 2.0, noise_mb=0.5)})
    m = analyze_drift(tmp_path)
    (proc,) = m.processes
    assert proc.slope_mb_per_min == pytest.approx(2.0, abs=0.05), proc
    assert proc.r2 is not None and proc.r2 > 0.99 and m.too_short is None


def test_a_flat_series_with_noise_has_a_slope_near_zero_and_passes_1_mb_per_min(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(60, 0.0, noise_mb=2.0)})
    m = analyze_drift(tmp_path)
    assert m.worst_slope_mb_per_min is not None and abs(m.worst_slope_mb_per_min) < 0.05, m.processes
    reading = drift_reading(m, MEMORY_SLOPE_METRIC, "<", 1.0)
    assert reading.value == m.worst_slope_mb_per_min and reading.why is None and reading.doubt is None


def test_the_warm_up_is_left_out_of_the_fit(tmp_path: Path) -> None:
    """80 MB of start-up growth in the first 30 s (imports, pools), flat after: no leak."""
    rss = _rss(60, 0.0, noise_mb=0.2)
    rss[:30] = np.linspace(0, 80 * MB, 30)
    _harness(tmp_path, {101: rss})
    m = analyze_drift(tmp_path)
    assert m.warmup_s == pytest.approx(60.0) and abs(m.worst_slope_mb_per_min or 0.0) < 0.01, m.processes


def test_the_warm_up_is_a_tenth_of_the_soak_at_most_a_minute_and_windows_a_minute_or_a_tenth() -> None:
    assert warmup_s(3600) == 60 and warmup_s(300) == 30
    assert window_s(3540) == 60 and window_s(270) == 27


def test_the_steepest_process_is_the_reading_and_every_process_is_named(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(30, 0.1), 102: _rss(30, 3.0)})
    _harness(tmp_path, {77: _rss(30, 1.5)}, remote=True, name=HARNESS_REMOTE)
    m = analyze_drift(tmp_path)
    slopes = _by_name(m)
    assert set(slopes) == {"worker (pid 101)", "worker (pid 102)", "remote worker 1 (pid 77 on loadgen-2)"}
    assert m.worst_process == "worker (pid 102)" and m.worst_slope_mb_per_min == pytest.approx(3.0, abs=0.01)
    assert slopes["remote worker 1 (pid 77 on loadgen-2)"] == pytest.approx(1.5, abs=0.01)
    assert next(p for p in m.processes if p.remote).host == "loadgen-2"


def test_a_process_sampled_both_by_the_drill_and_by_itself_counts_once_as_the_drills(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(2, 0.0)})
    _harness(tmp_path, {101: _rss(2, 0.0)}, remote=False, name=HARNESS_REMOTE)  # same host "here", same pid
    table = read_harness(tmp_path)
    assert table.num_rows == 120


def test_a_short_soak_is_too_short_to_judge_even_with_a_clear_slope(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(5, 2.0, noise_mb=0.1)})
    m = analyze_drift(tmp_path)
    assert m.too_short is not None and "less than the 10 min" in m.too_short
    assert m.worst_slope_mb_per_min == pytest.approx(2.0, abs=0.1)  # measured and shown...
    reading = drift_reading(m, MEMORY_SLOPE_METRIC, "<", 1.0)
    assert reading.value is None and reading.why is not None and "not judged" in reading.why  # ...never judged


def test_a_short_soak_leaves_the_latency_drift_unjudged_too(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(5, 0.0)})
    _requests(tmp_path, 5, 20, (10.0, 10.0))
    m = analyze_drift(tmp_path)
    assert m.latency is not None and len(m.latency.windows) == 10
    assert drift_reading(m, P95_RATIO_METRIC, "<", 1.5).value is None


def test_a_slope_whose_error_band_reaches_the_target_is_doubted(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(12, 0.9, noise_mb=30.0)})
    m = analyze_drift(tmp_path)
    (proc,) = m.processes
    assert proc.slope_mb_per_min is not None and proc.slope_mb_per_min < 1.0, proc
    reading = drift_reading(m, MEMORY_SLOPE_METRIC, "<", 1.0)
    assert reading.doubt is not None and "standard errors" in reading.doubt


def test_a_process_not_sampled_through_the_soak_is_doubted(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(20, 0.0), 102: _rss(5, 0.0)})  # pid 102 stopped reporting after 5 min
    reading = drift_reading(analyze_drift(tmp_path), MEMORY_SLOPE_METRIC, "<", 1.0)
    assert reading.doubt is not None and "worker (pid 102)" in reading.doubt and "(pid 101)" not in reading.doubt


def test_a_p95_rising_from_10_to_40_ms_in_30_min_drifts_10_ms_per_10_min(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(30, 0.0)})
    _requests(tmp_path, 30, 20, (10.0, 40.0))
    m = analyze_drift(tmp_path)
    assert m.span_from == "requests" and m.latency is not None and m.latency.window_s == 60
    assert len(m.latency.windows) == 29  # 30 min less the 60 s warm-up
    slope = drift_reading(m, P95_SLOPE_METRIC, "<", 5.0)
    assert slope.value == pytest.approx(10.0, rel=0.03), m.latency
    first, last = m.latency.windows[0].p95_ms, m.latency.windows[-1].p95_ms
    assert first is not None and last is not None
    ratio = drift_reading(m, P95_RATIO_METRIC, "<", 1.5)
    assert ratio.value == pytest.approx(last / first) and ratio.value == pytest.approx(39.5 / 11.5, rel=0.03)


def test_a_steady_p95_has_no_drift(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(20, 0.0)})
    _requests(tmp_path, 20, 20, (12.0, 12.0))
    m = analyze_drift(tmp_path)
    assert m.latency is not None and m.latency.p95_slope_ms_per_10min == pytest.approx(0.0, abs=0.05)
    assert drift_reading(m, P95_RATIO_METRIC, "<", 1.5).value == pytest.approx(1.0, abs=0.01)


def test_a_run_without_harness_samples_is_not_measured(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no harness samples"):
        analyze_drift(tmp_path)


def test_an_unknown_metric_is_refused(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(2, 0.0)})
    with pytest.raises(ValueError, match="not a drift metric"):
        drift_reading(analyze_drift(tmp_path), "p95_ms", "<", 1.0)


def test_the_measurement_round_trips_through_json(tmp_path: Path) -> None:
    _harness(tmp_path, {101: _rss(3, 1.0)})
    _requests(tmp_path, 3, 10, (5.0, 5.0))
    m = analyze_drift(tmp_path)
    assert DriftMeasurement.model_validate_json(m.model_dump_json()) == m
