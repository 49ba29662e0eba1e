"""Latency SLA analyzer: p50/p95/p99/max per phase, corrected and uncorrected, from the request records.

Corrected latency counts from the *intended* send time (open model), so a stall cannot hide
behind requests the generator held back (coordinated omission): corrected = start + latency -
intended. Uncorrected (from the actual send) is shown beside it. Closed-model records have no
intended time: both figures are then the same.

A request belongs to the phase in which its intended time (closed model: its start) falls;
phases are ``name -> [start, end)`` epoch windows, or read from the run's ``events.jsonl`` (each
``phase`` event opens a phase that the next one closes). Percentiles (``p50_ms``...) are over every
request with an outcome: answered without error, and failed or timed out at their time to failure
(a failure recorded without a time counts as the slowest possible, 1 h): 12 % of requests timing
out at 5 s must show in the p95. ``successful_p*_ms`` are over the requests answered without error
only, for an SLA that says it excludes failures. Failed requests also count in the error rate
(``error_rate_percent``); requests the generator never sent (``not_sent``) or left in flight at the
stop (``abandoned``) are counted apart, in neither.

Percentiles come from HdrHistogram (3 significant digits, 1 us .. 1 h: at most 0.1 % high). To
keep 10 M records cheap the bucket index of every value is computed with numpy (the same index
HdrHistogram uses), counted with ``np.bincount``, and only the non-empty buckets (a few thousand)
are recorded into the histogram.

Results carry the generator's own verdict from ``load.json`` (see ``drillbit.load.runner``): latency
measured by a saturated generator is the generator's, and a verdict on it must be INCONCLUSIVE.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hdrh.histogram import HdrHistogram

from drillbit.core.events import read_events
from drillbit.core.measurements import LatencyStats
from drillbit.core.rundir import EVENTS, LOAD_META, REQUESTS_DIR, read_transit, request_parts

__all__ = [
    "GeneratorSaturated",
    "LatencyReport",
    "Requests",
    "analyze_latency",
    "analyze_run",
    "histogram",
    "latency_percentile",
    "load_requests",
    "phases_from_events",
    "phases_of",
    "unreadable_parts",
]

log = logging.getLogger(__name__)

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3  # 1 us .. 1 h, 3 significant digits
_SUB_MAGNITUDE = 10  # log2 of HdrHistogram's half sub-bucket count for 3 digits (1024 of 2048)
PHASE_ALL = "all"
#: error kinds the generator records for requests that got no outcome (drillbit.load.recording)
NO_OUTCOME = ("not_sent", "abandoned")
_BATCH = 1 << 20


class GeneratorSaturated(RuntimeError):
    """The load generator could not keep up: latency it measured is not the server's."""


@dataclass(frozen=True)
class Requests:
    """Request records as numpy columns (times in epoch seconds, latency in seconds).

    ``error``: any error kind was recorded; ``unsent``: the kind was not_sent or abandoned (no
    outcome), ``None`` when unknown (all False).
    """

    intended: np.ndarray
    start: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    error: np.ndarray
    unsent: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start)

    def key(self) -> np.ndarray:
        """The time that places a request in a phase: intended, else (closed model) start."""
        return np.where(np.isnan(self.intended), self.start, self.intended)

    def corrected(self) -> np.ndarray:
        """Latency from the intended send time (the uncorrected latency where there is none)."""
        return np.where(np.isnan(self.intended), self.latency, self.start + self.latency - self.intended)

    def no_outcome(self) -> np.ndarray:
        return self.unsent if self.unsent is not None else np.zeros(len(self), dtype=bool)


def _files(run_dir: Path | str) -> list[Path]:
    """The readable request record parts (a part a killed generator left without its footer is
    skipped here and counted by ``unreadable_parts``)."""
    good, bad = request_parts(run_dir)
    if not good and not bad:
        raise FileNotFoundError(f"no request records in {Path(run_dir) / REQUESTS_DIR}")
    if not good:
        raise ValueError(f"{run_dir}: every request record file is unreadable ({', '.join(f.name for f in bad)}): "
                         "were the generators killed?")  # fmt: skip
    if bad:
        log.warning("%s: skipping %d unreadable request record part(s): %s", run_dir, len(bad),
                    ", ".join(f.name for f in bad))  # fmt: skip
    return good


def unreadable_parts(run_dir: Path | str) -> list[str]:
    """Request record parts without their Parquet footer (their generator process was killed while
    writing them): their requests are lost, at most one part's worth (a few seconds) per process."""
    return [f.name for f in request_parts(run_dir)[1]]


def load_requests(run_dir: Path | str, name: str | None = None) -> Requests:
    """Every worker's records (only requests called ``name`` if given), read batch by batch into
    preallocated columns (no second copy)."""
    files = _files(run_dir)
    try:
        n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"{run_dir}: unreadable request records ({err}): was a generator killed?") from err
    out = Requests(
        intended=np.empty(n, dtype=np.float64),
        start=np.empty(n, dtype=np.float64),
        latency=np.empty(n, dtype=np.float64),
        status=np.empty(n, dtype=np.int16),
        error=np.empty(n, dtype=bool),
        unsent=np.empty(n, dtype=bool),
    )
    assert out.unsent is not None
    columns = ["intended", "start", "latency", "status", "error"] + (["name"] if name is not None else [])
    pos = 0
    for f in files:
        for b in pq.ParquetFile(f).iter_batches(batch_size=_BATCH, columns=columns):
            if name is not None:
                b = b.filter(pc.fill_null(pc.equal(b.column("name").cast(pa.string()), name), False))
            k = b.num_rows
            sl = slice(pos, pos + k)
            for col_name, col in (("intended", out.intended), ("start", out.start), ("latency", out.latency)):
                col[sl] = b.column(col_name).to_numpy(zero_copy_only=False)
            out.status[sl] = pc.fill_null(b.column("status"), 0).to_numpy(zero_copy_only=False)
            kind = b.column("error")
            out.error[sl] = kind.is_valid().to_numpy(zero_copy_only=False)
            out.unsent[sl] = _is_kind(kind, NO_OUTCOME)
            pos += k
    if pos == n:
        return out
    return Requests(out.intended[:pos], out.start[:pos], out.latency[:pos], out.status[:pos], out.error[:pos],
                    out.unsent[:pos])  # fmt: skip


def _is_kind(column: pa.Array, kinds: tuple[str, ...]) -> np.ndarray:
    """Rows whose (dictionary-encoded) error kind is one of ``kinds``, without decoding strings per row."""
    if isinstance(column, pa.DictionaryArray):
        codes = [i for i, v in enumerate(column.dictionary.to_pylist()) if v in kinds]
        if not codes:
            return np.zeros(len(column), dtype=bool)
        idx = pc.fill_null(column.indices, -1).to_numpy(zero_copy_only=False)
        return np.isin(idx, codes)
    return pc.fill_null(pc.is_in(column, pa.array(kinds)), False).to_numpy(zero_copy_only=False)


def _bucket_index(seconds: np.ndarray, chunk: int = _BATCH) -> np.ndarray:
    """HdrHistogram's counts index (1 us units, 3 digits) of every value, vectorized chunk by chunk."""
    out = np.empty(len(seconds), dtype=np.int32)
    for lo in range(0, len(seconds), chunk):
        us = np.clip(np.rint(seconds[lo : lo + chunk] * 1e6), LOWEST_US, HIGHEST_US).astype(np.int64)
        magnitude = np.frexp(us.astype(np.float64))[1] - 1  # floor(log2(us)), exact below 2**53
        shift = np.maximum(magnitude - _SUB_MAGNITUDE, 0)
        out[lo : lo + chunk] = (shift << _SUB_MAGNITUDE) + (us >> shift)
    return out


def _bucket_value(index: np.ndarray) -> np.ndarray:
    """The lowest value in each bucket (inverse of ``_bucket_index``)."""
    index = index.astype(np.int64)
    shift = np.maximum((index >> _SUB_MAGNITUDE) - 1, 0)
    return (index - (shift << _SUB_MAGNITUDE)) << shift


def _from_index(index: np.ndarray) -> HdrHistogram:
    h = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    counts = np.bincount(index)
    nonzero = np.flatnonzero(counts)
    for value, count in zip(_bucket_value(nonzero).tolist(), counts[nonzero].tolist(), strict=True):
        h.record_value(value, count)
    return h


def histogram(seconds: np.ndarray) -> HdrHistogram:
    """An HdrHistogram (values in microseconds) of latencies given in seconds; NaNs are skipped."""
    values = seconds[~np.isnan(seconds)]
    return _from_index(_bucket_index(values))


def _ok(r: Requests) -> np.ndarray:
    """Answered without error: no error kind recorded and a status below 500 (the locustfile may accept a 409)."""
    return ~r.error & (r.status > 0) & (r.status < 500)


def _pcts(index: np.ndarray) -> list[float | None]:
    if index.size == 0:
        return [None, None, None, None]
    h = _from_index(index)
    return [h.get_value_at_percentile(p) / 1000 for p in (50, 95, 99)] + [h.get_max_value() / 1000]


def _span(key: np.ndarray) -> tuple[float, float]:
    """The records' time span, widened by one mean gap so n requests at rate r span n / r."""
    lo, hi = float(np.nanmin(key)), float(np.nanmax(key))
    n = int(np.count_nonzero(~np.isnan(key)))
    return lo, hi + ((hi - lo) / (n - 1) if n > 1 else 0.0)


def analyze_latency(
    requests: Requests, phases: dict[str, tuple[float, float]] | None = None
) -> dict[str, LatencyStats]:
    """Stats per phase (name -> [start, end) epoch window), plus "all" over the whole run."""
    if len(requests) == 0:
        raise ValueError("no request records: cannot measure latency")
    key = requests.key()
    no_outcome = requests.no_outcome()
    ok = _ok(requests)
    counted = ~no_outcome  # an outcome: answered, failed or timed out
    has_intended = ~np.isnan(requests.intended)
    sent = ~np.isnan(requests.start)
    # a failure recorded without a time to failure counts as the slowest value the histogram holds
    corrected = np.where(counted, np.nan_to_num(requests.corrected(), nan=HIGHEST_US / 1e6), 0.0)
    uncorrected = np.where(counted, np.nan_to_num(requests.latency, nan=HIGHEST_US / 1e6), 0.0)
    idx_c, idx_u = _bucket_index(corrected), _bucket_index(uncorrected)
    data_lo, data_hi = _span(key)
    windows = {PHASE_ALL: (data_lo, data_hi), **(phases or {})}
    out = {}
    for name, (lo, hi) in windows.items():
        m = (key >= lo) & (key < hi) if name != PHASE_ALL else np.ones(len(key), dtype=bool)
        w_lo = max(lo, data_lo)
        w_hi = max(w_lo, min(hi, data_hi))  # a phase beyond the records: an empty window
        duration = max(w_hi - w_lo, 1e-9)
        mo, mc = m & ok, m & counted
        n_ok, count = int(mo.sum()), int(m.sum())
        n_err = int(mc.sum()) - n_ok
        n_int = int((m & has_intended).sum())
        c, u, good = _pcts(idx_c[mc]), _pcts(idx_u[mc]), _pcts(idx_c[mo])
        out[name] = LatencyStats(
            phase=name, window=(w_lo, w_hi), count=count, ok=n_ok, errors=n_err, not_sent=count - n_ok - n_err,
            error_rate=n_err / (n_ok + n_err) if n_ok + n_err else 0.0,
            error_rate_percent=100.0 * n_err / (n_ok + n_err) if n_ok + n_err else None,
            throughput_rps=n_ok / duration, achieved_rps=int((m & sent).sum()) / duration,
            intended_rps=n_int / duration if n_int else None,
            p50_ms=c[0], p95_ms=c[1], p99_ms=c[2], max_ms=c[3],
            uncorrected_p50_ms=u[0], uncorrected_p95_ms=u[1], uncorrected_p99_ms=u[2], uncorrected_max_ms=u[3],
            successful_p50_ms=good[0], successful_p95_ms=good[1], successful_p99_ms=good[2],
            closed_model=count > 0 and n_int == 0,
        )  # fmt: skip
    return out


def phases_of(events: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Phase windows from ``phase`` events (``name``): each runs until the next one.

    The last phase is open-ended (+inf); a name that recurs keeps its first window. The one place
    phases are worked out (``drillbit.analysis`` stores them in measurements.json).
    """
    marks = sorted((float(e["t"]), str(e.get("name", "?"))) for e in events if e.get("kind") == "phase")
    phases: dict[str, tuple[float, float]] = {}
    for i, (t, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else math.inf
        if name in phases:
            log.warning("phase %r starts again at %s: keeping its first window", name, t)
            continue
        phases[name] = (t, end)
    return phases


def phases_from_events(run_dir: Path | str) -> dict[str, tuple[float, float]]:
    """Phase windows from the run's ``events.jsonl`` (:func:`phases_of`); ``{}`` without one."""
    path = Path(run_dir) / EVENTS
    return phases_of(read_events(path)) if path.exists() else {}


@dataclass(frozen=True)
class LatencyReport:
    """Per-phase latency, and whether the generator that measured it can be trusted."""

    phases: dict[str, LatencyStats]
    generator_saturated: bool | None  # None: no load.json (the generator's verdict is unknown)
    saturation_reasons: list[str] = field(default_factory=list)
    generator_complete: bool | None = None
    lost_parts: list[str] = field(default_factory=list)  # unreadable request record parts: their rows are lost
    lost_in_transit: int = 0  # rows remote workers sent that never reached the master
    unaccounted_workers: list[str] = field(default_factory=list)  # remote workers that never said what they sent

    @property
    def trustworthy(self) -> bool:
        return (self.generator_saturated is False and self.generator_complete is not False and not self.lost_parts
                and not self.lost_in_transit and not self.unaccounted_workers)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": {k: v.model_dump() for k, v in self.phases.items()},
            "generator_saturated": self.generator_saturated,
            "saturation_reasons": self.saturation_reasons,
            "generator_complete": self.generator_complete,
            "lost_parts": self.lost_parts,
            "lost_in_transit": self.lost_in_transit,
            "unaccounted_workers": self.unaccounted_workers,
        }


def _load_meta(run_dir: Path | str) -> dict[str, Any] | None:
    path = Path(run_dir) / LOAD_META
    if not path.exists():
        return None
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def analyze_run(run_dir: Path | str, phases: dict[str, tuple[float, float]] | None = None) -> LatencyReport:
    """Latency per phase for a run directory (phases from events.jsonl unless given), with load.json's verdict."""
    windows = phases if phases is not None else phases_from_events(run_dir)
    stats = analyze_latency(load_requests(run_dir), windows)
    lost = unreadable_parts(run_dir)
    transit = read_transit(run_dir) or {}
    in_transit, unaccounted = int(transit.get("rows_lost") or 0), list(transit.get("unaccounted_workers") or [])
    meta = _load_meta(run_dir)
    if meta is None:
        return LatencyReport(stats, None, lost_parts=lost, lost_in_transit=in_transit,
                             unaccounted_workers=unaccounted)  # fmt: skip
    return LatencyReport(
        stats,
        bool(meta.get("saturated")),
        list(meta.get("reasons") or []),
        bool(meta.get("complete", True)) and not lost and not in_transit and not unaccounted,
        lost,
        in_transit,
        unaccounted,
    )


def latency_percentile(
    run_dir: str,
    phase: str = PHASE_ALL,
    percentile: float = 95,
    corrected: bool = True,
    allow_saturated: bool = False,
) -> float:
    """Chaos Toolkit probe: a latency percentile in milliseconds over a phase of the run.

    ``phase`` is "all" or a phase named in the run's events.jsonl. Raises when it cannot measure:
    no records, no successful request in the phase, an unknown phase, or (unless
    ``allow_saturated``) a saturated load generator.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    meta = _load_meta(run_dir)
    if meta is not None and meta.get("saturated") and not allow_saturated:
        raise GeneratorSaturated(f"{run_dir}: the load generator was saturated ({meta.get('reason')})")
    if lost := unreadable_parts(run_dir):
        raise ValueError(f"{run_dir}: request records lost ({', '.join(lost)} unreadable: a generator process was "
                         "killed while writing them): a percentile of the rest would understate the run")  # fmt: skip
    transit = read_transit(run_dir) or {}
    if transit.get("rows_lost") or transit.get("unaccounted_workers"):
        raise ValueError(f"{run_dir}: request records lost in transit from remote workers "
                         f"({transit.get('rows_lost') or 0} rows; workers that never reported: "
                         f"{', '.join(transit.get('unaccounted_workers') or []) or 'none'}): a percentile of the "
                         "rest would understate the run")  # fmt: skip
    r = load_requests(run_dir)
    key = r.key()
    if phase == PHASE_ALL:
        m = np.ones(len(r), dtype=bool)
    else:
        windows = phases_from_events(run_dir)
        if phase not in windows:
            known = ", ".join([PHASE_ALL, *windows]) or PHASE_ALL
            raise ValueError(f"{run_dir}: no phase {phase!r} in {EVENTS}: use one of {known}")
        lo, hi = windows[phase]
        m = (key >= lo) & (key < hi)
    m &= _ok(r)
    if not m.any():
        raise ValueError(f"{run_dir}: no successful requests in phase {phase!r}: cannot measure latency")
    values = r.corrected()[m] if corrected else r.latency[m]
    return float(histogram(values).get_value_at_percentile(percentile) / 1000)
