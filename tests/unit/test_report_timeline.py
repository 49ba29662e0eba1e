"""Per-second timeline series (vectorised) and the inline SVG charts."""

from __future__ import annotations

import numpy as np
import pytest

from drillbit.probes.latency import Requests
from drillbit.reports.charts import TimelineInput, inline_svg, timeline_svg
from drillbit.reports.timeline import bucket_width, request_series


def _requests(
    n: int, rate: float, latency: np.ndarray, *, t0: float = 1000.0, error: np.ndarray | None = None
) -> Requests:
    intended = t0 + np.arange(n) / rate
    err = np.zeros(n, dtype=bool) if error is None else error
    status = np.where(err, 503, 200).astype(np.int16)
    return Requests(intended=intended, start=intended.copy(), latency=latency, status=status, error=err,
                    unsent=np.zeros(n, dtype=bool))  # fmt: skip


def test_percentiles_per_second_match_numpy_within_the_bucket_precision() -> None:
    rng = np.random.default_rng(3)
    lat = rng.lognormal(-4.0, 0.8, 10_000)
    s = request_series(_requests(10_000, 1000.0, lat))
    assert s is not None and len(s.t) == 10
    for i in range(10):
        chunk = lat[i * 1000 : (i + 1) * 1000] * 1000
        for col, q in ((s.p50_ms, 50), (s.p95_ms, 95), (s.p99_ms, 99)):
            assert col[i] == pytest.approx(np.percentile(chunk, q), rel=0.02)


def test_corrected_latency_counts_from_the_intended_send_time() -> None:
    r = _requests(100, 100.0, np.full(100, 0.010))
    r.start[:] = r.intended + 0.5  # every request left half a second late (a stall)
    s = request_series(r)
    assert s is not None
    assert s.p50_ms[0] == pytest.approx(510, rel=0.01) and s.uncorrected_p99_ms[0] == pytest.approx(10, rel=0.01)


def test_error_rate_and_throughput_per_second() -> None:
    error = np.zeros(300, dtype=bool)
    error[100:200] = True  # the second second fails entirely
    s = request_series(_requests(300, 100.0, np.full(300, 0.005), error=error))
    assert s is not None
    assert list(s.error_rate) == [0.0, 1.0, 0.0]
    assert list(s.ok_rps) == [100.0, 0.0, 100.0]
    assert np.isnan(s.p95_ms[1])


def test_bucket_width_stays_one_second_until_the_cap_then_widens() -> None:
    assert bucket_width(3000, 3600) == 1.0
    assert bucket_width(86_400, 3600) == 24.0


def test_a_long_run_is_bucketed_within_the_cap() -> None:
    s = request_series(_requests(20_000, 0.1, np.full(20_000, 0.01)), max_buckets=1000)  # 200 000 s of records
    assert s is not None and len(s.t) <= 1001 and s.width == 200.0


def test_timeline_svg_is_inline_svg_without_active_content() -> None:
    s = request_series(_requests(3000, 100.0, np.full(3000, 0.01)))
    svg = timeline_svg(TimelineInput(origin=1000.0, phases={"baseline": (1000.0, 1010.0), "fault": (1010.0, np.inf)},
                                     faults=[(1010.0, 1012.0, "kill")], marks=[(1015.0, "<script>x</script>")],
                                     rto=(1010.0, 1013.0, "RTO 3 s"), requests=s))  # fmt: skip
    assert svg is not None and svg.startswith("<svg ")
    assert "<script" not in svg and "<!--" not in svg


def test_inline_svg_prefixes_ids_and_their_references() -> None:
    raw = '<?xml version="1.0"?><svg x="1"><defs><clipPath id="p1"/></defs><g clip-path="url(#p1)"/></svg>'
    assert inline_svg(raw, "c") == (
        '<svg role="img" class="chart" x="1"><defs><clipPath id="c-p1"/></defs><g clip-path="url(#c-p1)"/></svg>'
    )


def test_inline_svg_refuses_active_content() -> None:
    with pytest.raises(ValueError, match="active content"):
        inline_svg('<svg><script>alert(1)</script></svg>', "c")


def test_nothing_to_draw_gives_no_chart() -> None:
    assert timeline_svg(TimelineInput(origin=0.0)) is None
