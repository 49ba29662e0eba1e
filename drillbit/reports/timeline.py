"""Per-second series for the timeline charts, vectorised so 10 M request records stay cheap.

Latency percentiles per time bucket come from one 2-D histogram (time bucket x latency bucket,
1 % wide logarithmic latency buckets, 1 us .. 1 h) filled with a single ``np.bincount``; each
bucket's percentile is read from its cumulative counts. The figures are for drawing (1 % bucket
precision); the per-phase table shows the analyzers' own HdrHistogram figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from drillbit.probes.latency import Requests

__all__ = ["RequestSeries", "bucket_width", "ratio_series", "request_series"]

_GROWTH = 1.01  # latency bucket width: 1 %
_LOG_GROWTH = math.log(_GROWTH)
_LOWEST_US, _HIGHEST_US = 1.0, 3.6e9
_N_LAT = math.ceil(math.log(_HIGHEST_US) / _LOG_GROWTH) + 1
_CHUNK = 1 << 21


@dataclass(frozen=True)
class RequestSeries:
    """Request figures per time bucket (``t``: bucket starts, epoch s; rates per second)."""

    t: np.ndarray
    width: float
    p50_ms: np.ndarray  # corrected (from the intended send time); NaN where no request succeeded
    p95_ms: np.ndarray
    p99_ms: np.ndarray
    uncorrected_p99_ms: np.ndarray
    ok_rps: np.ndarray  # answered without error, per second
    sent_rps: np.ndarray
    intended_rps: np.ndarray | None  # None under the closed model
    error_rate: np.ndarray  # errors / (ok + errors); NaN where nothing was answered
    rows: int


def bucket_width(span_s: float, max_buckets: int) -> float:
    """1 s, widened to a whole number of seconds so at most ``max_buckets`` cover ``span_s``."""
    return float(max(1, math.ceil(span_s / max_buckets))) if span_s > 0 else 1.0


def _latency_index(seconds: np.ndarray) -> np.ndarray:
    us = np.clip(seconds * 1e6, _LOWEST_US, _HIGHEST_US)
    return np.minimum((np.log(us) / _LOG_GROWTH).astype(np.int64), _N_LAT - 1)


def _percentiles(
    bucket: np.ndarray, seconds: np.ndarray, n_buckets: int, qs: tuple[float, ...]
) -> list[np.ndarray]:
    """Per time bucket, each percentile ``q`` (0..100) of ``seconds``, in ms (NaN for an empty bucket)."""
    hist = np.zeros(n_buckets * _N_LAT, dtype=np.int64)
    for lo in range(0, len(bucket), _CHUNK):
        cell = bucket[lo : lo + _CHUNK].astype(np.int64) * _N_LAT + _latency_index(seconds[lo : lo + _CHUNK])
        hist += np.bincount(cell, minlength=n_buckets * _N_LAT)
    cum = np.cumsum(hist.reshape(n_buckets, _N_LAT), axis=1)
    total = cum[:, -1]
    mid_ms = np.exp((np.arange(_N_LAT) + 0.5) * _LOG_GROWTH) / 1000.0
    out = []
    for q in qs:
        rank = np.maximum(np.ceil(total * q / 100.0), 1)
        idx = np.minimum((cum < rank[:, None]).sum(axis=1), _N_LAT - 1)
        out.append(np.where(total > 0, mid_ms[idx], np.nan))
    return out


def request_series(requests: Requests, *, max_buckets: int = 3600) -> RequestSeries | None:
    """Per-second latency percentiles, throughput, error rate from every request record (None: no records)."""
    key = requests.key()
    valid = ~np.isnan(key)
    if not valid.any():
        return None
    t0 = math.floor(float(np.nanmin(key)))
    span = float(np.nanmax(key)) - t0
    width = bucket_width(span, max_buckets)
    n = int(span // width) + 1
    bucket = np.where(valid, (np.nan_to_num(key, nan=t0) - t0) // width, 0).astype(np.int64)
    no_outcome = requests.no_outcome()
    ok = valid & ~requests.error & (requests.status > 0) & (requests.status < 500)
    errors = valid & ~ok & ~no_outcome
    sent = valid & ~np.isnan(requests.start)
    has_intended = valid & ~np.isnan(requests.intended)
    ok_b = bucket[ok]
    corrected = requests.corrected()[ok]
    p50, p95, p99 = _percentiles(ok_b, corrected, n, (50, 95, 99))
    (u99,) = _percentiles(ok_b, requests.latency[ok], n, (99,))
    n_ok = np.bincount(ok_b, minlength=n).astype(float)
    n_err = np.bincount(bucket[errors], minlength=n).astype(float)
    answered = n_ok + n_err
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(answered > 0, n_err / answered, np.nan)
    intended = np.bincount(bucket[has_intended], minlength=n) / width if has_intended.any() else None
    return RequestSeries(
        t=t0 + np.arange(n) * width, width=width, p50_ms=p50, p95_ms=p95, p99_ms=p99, uncorrected_p99_ms=u99,
        ok_rps=n_ok / width, sent_rps=np.bincount(bucket[sent], minlength=n) / width, intended_rps=intended,
        error_rate=error_rate, rows=int(valid.sum()),
    )  # fmt: skip


def ratio_series(t: np.ndarray, ok: np.ndarray, width: float) -> pd.DataFrame:
    """Share of good samples per bucket of ``width`` seconds (columns t, ratio, n)."""
    if t.size == 0:
        return pd.DataFrame({"t": [], "ratio": [], "n": []})
    t0 = math.floor(float(t.min()))
    b = ((t - t0) // width).astype(np.int64)
    n = np.bincount(b)
    good = np.bincount(b, weights=ok.astype(float), minlength=n.size)
    keep = n > 0
    return pd.DataFrame({"t": (t0 + np.arange(n.size) * width)[keep], "ratio": good[keep] / n[keep], "n": n[keep]})
