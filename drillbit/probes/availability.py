"""Availability sampler and the RTO analyzer.

Sampler: a synthetic transaction every ``interval`` (100 ms by default) on fixed ticks of the
drill clock, each bounded by ``timeout`` (1 s by default), recorded as (t = its true send time,
ok, latency, status, error kind) in ``samples/availability.parquet``. The transaction is any URL
(``HttpCheck``, e.g. ``/readyz``) or the trading API's write path (``PlaceCancelOrder``), or any
callable with the ``Transaction`` signature. Error kinds: ``http`` (non-2xx answer), ``timeout``
(no answer within the timeout), ``connection`` (refused / reset), ``protocol`` (unreadable
answer), ``late`` (every step answered, but the whole transaction took longer than the timeout).

RTO (ARCHITECTURE.md), precisely:

- a probe is *good* when it answered 2xx within ``slow_after`` seconds (default: the sampler's
  timeout). A slower answer is a failure, as is every error and every timeout;
- every probe is an observation of the service at one instant, its *evidence time*: for an
  answer in time, the arrival minus half a normal round trip (the median latency of good probes
  / 2), i.e. when the server handled it; for a timeout, send + timeout, and for an answer later
  than ``slow_after``, send + slow_after (the service still had not answered then). Not the send
  time: in a freeze, a probe sent late in the freeze is handled only when the freeze ends, and
  that, not its send, is the first evidence of recovery. (Not a late answer's arrival either: it
  proves the wait, and answers released together at a freeze's end arrive in any order);
- observations are those sent at or after ``fault_at`` (and before ``until``, when given: a later
  fault's own effects belong to it), ordered by evidence time. Recovery is the start of the LAST
  period of continuous success that lasts to the end of the observations and at least
  ``stability_window`` seconds (default 5): every window of that length from it on has an error
  rate <= ``max_error_rate`` (default 0: every probe good). A later outage therefore extends the
  RTO; recovering for a moment and failing again is not recovery. The true recovery lies between
  the last failed observation before it (``rto_lower_s``) and it (``rto_upper_s``: the
  conservative figure), each up to a round trip off (an evidence instant is an estimate within
  its request). ``rto_s`` is the midpoint; ``error_bound_s`` = half that gap + a normal round trip
  (p99 latency of the good probes before the fault): about half a sampling interval;
- time to detect: fault -> the moment the first failed probe was known to fail (its answer; for
  a hung probe, send + slow_after);
- outages: every failing run after the fault, each from the midpoint between the last good
  evidence and the earliest send of its failed probes (a request that failed, even slowly, shows
  the service failing from its send) to the midpoint between its last failure and the next good
  evidence; listed in ``outages`` (start, end, length, failed probes), their sum is ``downtime_s``;
- no failure after the fault: RTO 0, bound one sampling interval (an outage shorter than that
  can fall between probes). Samples ending before a stable run: no RTO (``recovered: false``,
  ``rto_s: null``), only the lower bound ``rto_lower_s``; never an invented number.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import pandas as pd

from drillbit.core.clock import Clock
from drillbit.core.events import fault_time
from drillbit.core.redact import redact_url
from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA
from drillbit.probes.samplers import ParquetSink, Sampler, TickSampler, read_meta, read_samples

__all__ = [
    "AvailabilitySampler",
    "HttpCheck",
    "Outage",
    "PlaceCancelOrder",
    "RtoNotObserved",
    "RtoResult",
    "Transaction",
    "analyze_rto",
    "availability_meta",
    "failing_since",
    "load_availability",
    "rto_per_fault",
    "rto_report",
    "rto_seconds",
    "service_recovered",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.1
DEFAULT_TIMEOUT = 1.0


class Transaction(Protocol):
    """One synthetic transaction: returns the final HTTP status; raises ``httpx`` errors."""

    def __call__(self, client: httpx.Client, timeout: float) -> int: ...


@dataclass(frozen=True)
class HttpCheck:
    """One request to any URL (e.g. the API's ``/readyz``); 2xx is ok."""

    url: str
    method: str = "GET"

    def __repr__(self) -> str:  # recorded in samples/availability.json: never a query's token
        return f"HttpCheck(url={redact_url(self.url)!r}, method={self.method!r})"

    def __call__(self, client: httpx.Client, timeout: float) -> int:
        return client.request(self.method, self.url, timeout=timeout).status_code


@dataclass(frozen=True)
class PlaceCancelOrder:
    """The trading API's write path: place a tiny resting limit order, then cancel it.

    The order (``symbol``, buy 1 at ``price``, client order id ``av-<run>-<n>``) can never match
    real flow; both steps share the one timeout. Ok when both answer 2xx. The project's
    ``probes/trading.yaml`` says which symbol, price and path (``drillbit.probes.definitions``).
    """

    base_url: str
    run_id: str
    symbol: str = "DRILL-AV"
    price: str = "0.00000001"
    orders_path: str = "/orders"
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.run_id) > 40:
            raise ValueError("run_id must be at most 40 characters (client order ids are at most 64)")

    def __call__(self, client: httpx.Client, timeout: float) -> int:
        started = time.monotonic()
        order = {"symbol": self.symbol, "side": "buy", "price": self.price, "qty": 1,
                 "client_order_id": f"av-{self.run_id}-{next(self._ids)}"}  # fmt: skip
        placed = client.post(f"{self.base_url}{self.orders_path}", json=order, timeout=timeout)
        if placed.status_code not in (200, 201):
            return placed.status_code
        order_id = int(placed.json()["id"])
        left = max(timeout - (time.monotonic() - started), 0.001)
        return client.delete(f"{self.base_url}{self.orders_path}/{order_id}", timeout=left).status_code


class AvailabilitySampler(Sampler):
    """Runs ``transaction`` every ``interval`` s, concurrently, each bounded by ``timeout``."""

    def __init__(
        self,
        transaction: str | Transaction,
        run_dir: Path | str,
        *,
        clock: Clock,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        method: str = "GET",
    ) -> None:
        self.transaction: Transaction = HttpCheck(transaction, method) if isinstance(transaction, str) else transaction
        self.interval, self.timeout, self.clock = interval, timeout, clock
        self.path = Path(run_dir) / AVAILABILITY
        self.sink = ParquetSink(self.path, AVAILABILITY_SCHEMA)
        # enough slots that probes hung for the whole timeout never hold back a tick
        self.max_in_flight = math.ceil(timeout / interval) + 2
        limits = httpx.Limits(max_connections=self.max_in_flight + 2, max_keepalive_connections=self.max_in_flight)
        self._client = httpx.Client(timeout=timeout, limits=limits)
        self._ticks = TickSampler(self._probe, clock=clock, interval=interval, max_in_flight=self.max_in_flight,
                                  on_flush=self.sink.flush, name="availability")  # fmt: skip
        self._started_at: float | None = None
        super().__init__()

    def _probe(self, tick: float) -> None:
        sent = self.clock.now()
        status, error = 0, None
        try:
            status = self.transaction(self._client, self.timeout)
            error = None if 200 <= status < 300 else "http"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.TransportError:
            error = "connection"
        except (httpx.HTTPError, ValueError, KeyError, TypeError):  # an answer we could not read
            error = "protocol"
        latency = self.clock.now() - sent
        if error is None and latency > self.timeout:
            error = "late"
        self.sink.add({"t": sent, "ok": error is None, "latency": latency if status else math.nan,
                       "status": status, "error": error})  # fmt: skip

    def _meta(self) -> dict[str, Any]:
        return {"sampler": "availability", "transaction": repr(self.transaction), "interval_s": self.interval,
                "timeout_s": self.timeout, "max_in_flight": self.max_in_flight, "started_at": self._started_at,
                **self._ticks.stats()}  # fmt: skip

    def _prepare(self) -> None:
        self._started_at = self.clock.now()

    def _release(self) -> None:
        self._client.close()

    def _final_meta(self) -> dict[str, Any]:
        return {**super()._final_meta(), "stopped_at": self.clock.now()}


class RtoNotObserved(RuntimeError):
    """Sustained recovery was not observed within the samples: there is no RTO number."""


@dataclass(frozen=True)
class Outage:
    """One failing run after the fault (epoch seconds; see the module docstring)."""

    start: float
    end: float
    failed_probes: int
    error_s: float | None  # |length_s - truth| <= this; None: still failing at the last observation (a floor)

    @property
    def length_s(self) -> float:
        return max(0.0, self.end - self.start)

    def to_dict(self, fault_at: float) -> dict[str, float | int | None]:
        return {"start": self.start, "end": self.end, "start_s": self.start - fault_at, "end_s": self.end - fault_at,
                "length_s": self.length_s, "failed_probes": self.failed_probes, "error_s": self.error_s}  # fmt: skip


@dataclass(frozen=True)
class RtoResult:
    fault_at: float
    recovered: bool  # False: the samples ended before sustained recovery; rto_s is then None
    rto_s: float | None  # best estimate: midway between the last failure and the first good observation
    rto_lower_s: float | None  # the last failure before recovery (the truth is not earlier)
    rto_upper_s: float | None  # the first good observation of the stable run (the truth is not later)
    # (both up to a round trip off: see error_bound_s)
    recovered_at: float | None
    detect_s: float | None  # None when no probe failed after the fault
    downtime_s: float  # the sum of the outages' lengths
    downtime_error_bound_s: float | None  # |downtime_s - truth| <= this; None: no bound (the last outage is open)
    outages: list[dict[str, float | int]]  # every failing run after the fault: Outage.to_dict
    failed_probes: int
    probes: int
    interval_s: float
    error_bound_s: float  # |rto_s - truth| <= this
    stability_window_s: float
    max_error_rate: float
    slow_after_s: float
    timeout_s: float
    observed_until_s: float  # evidence time of the last observation, from the fault
    until: float | None  # observations sent before this only (a later fault's); None: to the end of the samples
    first_failed_at: float | None  # send time of the first failed probe after the fault
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_availability(run_dir: Path | str) -> pd.DataFrame:
    table = read_samples(Path(run_dir) / AVAILABILITY, AVAILABILITY_SCHEMA)
    return table.to_pandas().sort_values("t", kind="stable").reset_index(drop=True)


def availability_meta(run_dir: Path | str) -> dict[str, Any]:
    """How the availability samples were taken (interval, timeout), or ``{}`` if not recorded."""
    return read_meta(Path(run_dir) / AVAILABILITY)


@dataclass(frozen=True)
class _Observations:
    """Probes after the fault, in evidence order: evidence time, good, send time, known-bad time."""

    k: np.ndarray
    good: np.ndarray
    sent: np.ndarray
    known_bad: np.ndarray
    prev_key: float  # the latest evidence before the fault (the fault time when there is none)
    precision: float  # how far an evidence instant can sit from the real one


def _observe(samples: pd.DataFrame, fault_at: float, until: float | None, slow: float, timeout: float) -> _Observations:
    df = samples.sort_values("t", kind="stable")
    t = df["t"].to_numpy(dtype=float)
    lat = df["latency"].to_numpy(dtype=float)
    answered = ~np.isnan(lat)
    timed_out = ~answered & (df["error"].astype(object).to_numpy() == "timeout")
    with np.errstate(invalid="ignore"):
        good = df["ok"].to_numpy(dtype=bool) & answered & (lat <= slow)
        late = answered & (lat > slow)
    half_rtt = float(np.median(lat[good])) / 2 if good.any() else 0.0
    # a normal round trip: p99 latency of the good probes before the fault (without a baseline, twice the median)
    baseline = lat[good & (t < fault_at)]
    precision = float(np.percentile(baseline, 99)) if baseline.size >= 10 else 4 * half_rtt
    handled = t + np.maximum(np.nan_to_num(lat) - half_rtt, 0.0)
    # a late answer: still failing at send + slow_after, or when the server released it, if earlier
    # (answers released together at a freeze's end: the late and the good ones are one instant)
    evidence = np.select([late, answered, timed_out], [np.minimum(t + slow, handled), handled, t + timeout], default=t)
    known_bad = np.select([late | timed_out, answered], [t + min(slow, timeout), t + np.nan_to_num(lat)], default=t)
    after = (t >= fault_at) & (t < until if until is not None else True)
    if not after.any():
        raise ValueError("no availability samples after the fault: cannot measure RTO")
    before_keys = evidence[t < fault_at]
    # by evidence time; a success less than a round trip (``precision``) before a failure cannot be told
    # apart from one at the same instant (answers a freeze releases together): it goes after the
    # failure and takes its time (the failing run is not split, the recovery is not earlier)
    ev = evidence[after]
    order = np.argsort(ev + np.where(good[after], precision, 0.0), kind="stable")
    return _Observations(k=np.maximum.accumulate(ev[order]), good=good[after][order], sent=t[after][order],
                         known_bad=known_bad[after][order], prev_key=float(before_keys.max()) if before_keys.size
                         else fault_at, precision=precision)  # fmt: skip


def analyze_rto(
    samples: pd.DataFrame,
    fault_at: float,
    *,
    stability_window: float = 5.0,
    max_error_rate: float = 0.0,
    slow_after: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float | None = None,
    until: float | None = None,
) -> RtoResult:
    """RTO from availability samples (columns t, ok, latency, error); see the module docstring."""
    if stability_window <= 0:
        raise ValueError("stability_window must be > 0")
    if not 0 <= max_error_rate < 1:
        raise ValueError("max_error_rate must be in [0, 1)")
    slow = timeout if slow_after is None else slow_after
    obs = _observe(samples, fault_at, until, slow, timeout)
    k, g, sent = obs.k, obs.good, obs.sent
    all_t = samples["t"].to_numpy(dtype=float)
    step = interval if interval is not None else float(np.median(np.diff(np.sort(all_t)))) if len(all_t) > 1 \
        else math.nan  # fmt: skip
    bad = np.flatnonzero(~g)
    outages = _outages(k, g, sent, fault_at, obs.prev_key, obs.precision)
    common: dict[str, Any] = {
        "fault_at": fault_at, "probes": int(k.size), "interval_s": step, "stability_window_s": stability_window,
        "max_error_rate": max_error_rate, "slow_after_s": slow, "timeout_s": timeout, "until": until,
        "observed_until_s": float(k[-1] - fault_at), "failed_probes": int(bad.size),
        "downtime_s": sum(o.length_s for o in outages), "outages": [o.to_dict(fault_at) for o in outages],
        "downtime_error_bound_s": _downtime_bound(outages, step),
        "first_failed_at": float(sent[bad].min()) if bad.size else None,
        "method": (f"synthetic transaction every {step * 1000:.0f} ms; good = 2xx within {slow:g} s; recovery = "
                   f"midway between the last failure and the first good observation (by evidence time) of the "
                   f"last run of success lasting to the end (at least {stability_window:g} s, error rate <= "
                   f"{max_error_rate:g})"),
    }  # fmt: skip
    if bad.size == 0:
        return RtoResult(recovered=True, rto_s=0.0, rto_lower_s=0.0, rto_upper_s=0.0, recovered_at=fault_at,
                         detect_s=None, error_bound_s=step, **common)  # fmt: skip
    detect = float(obs.known_bad[bad].min() - fault_at)
    start = _last_stable_run(k, g, int(bad[0]), stability_window, max_error_rate)
    if start is None:
        return RtoResult(recovered=False, rto_s=None, rto_lower_s=float(k[bad[-1]] - fault_at), rto_upper_s=None,
                         recovered_at=None, detect_s=detect, error_bound_s=step, **common)  # fmt: skip
    last_bad = int(bad[np.searchsorted(bad, start) - 1])
    lower, upper = float(k[last_bad]), float(k[start])
    recovered_at = (lower + upper) / 2
    return RtoResult(
        recovered=True, rto_s=recovered_at - fault_at, rto_lower_s=lower - fault_at, rto_upper_s=upper - fault_at,
        recovered_at=recovered_at, detect_s=detect, error_bound_s=(upper - lower) / 2 + obs.precision, **common,
    )  # fmt: skip


def _last_stable_run(k: np.ndarray, good: np.ndarray, after: int, window: float, max_error_rate: float) -> int | None:
    """Index of the first good observation after ``after`` from which every window of ``window`` s
    to the end of the observations meets the error threshold, and which the observations outlast
    by ``window``: the start of the last stable run. None when the observations end failing."""
    n = k.size
    bad_cum = np.concatenate([[0], np.cumsum(~good)])
    idx = np.arange(n)
    ends = np.searchsorted(k, k + window, side="left")  # observations in [k_j, k_j + window)
    complete = ends < n
    fits = (bad_cum[ends] - bad_cum[idx]) <= max_error_rate * (ends - idx)
    last_from = int(np.searchsorted(k, k[-1] - window, side="right"))  # the final window, ending at the last one
    if bad_cum[n] - bad_cum[last_from] > max_error_rate * (n - last_from):
        return None  # failing at the end of the observations
    broken = np.flatnonzero(complete & ~fits)
    tail = max(int(broken[-1]) + 1 if broken.size else 0, after + 1)
    candidates = np.flatnonzero(good[tail:]) + tail
    if candidates.size == 0 or k[-1] - k[candidates[0]] < window:
        return None
    return int(candidates[0])


def _outages(
    k: np.ndarray, good: np.ndarray, sent: np.ndarray, fault_at: float, prev_key: float, precision: float
) -> list[Outage]:
    """Every failing run (in evidence order) with its estimated extent; see the module docstring."""
    bad = (~good).astype(np.int8)
    edges = np.diff(np.concatenate([[0], bad, [0]]))
    firsts, lasts = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    out: list[Outage] = []
    prev_end = fault_at
    for a, b in zip(firsts, lasts, strict=True):
        before = float(k[a - 1]) if a > 0 else prev_key
        earliest = float(sent[a : b + 1].min())  # a failing request shows the service failing from its send
        begin = max(fault_at, prev_end, (before + earliest) / 2 if before < earliest else earliest)
        # the true start lies in [the last good evidence, the first failed send]; the true end in
        # [the last failure, the next good evidence]; each edge also up to a round trip off
        # (an outage after the fault starts no earlier than the fault, nor than the previous one's end)
        start_err = max(begin - min(max(before, fault_at, prev_end), begin), earliest - begin, 0.0) + precision
        if b + 1 < k.size:
            end = (float(k[b]) + float(k[b + 1])) / 2
            error: float | None = start_err + (float(k[b + 1]) - float(k[b])) / 2 + precision
        else:
            end, error = float(k[b]), None
        out.append(Outage(start=begin, end=max(begin, end), failed_probes=int(b - a + 1), error_s=error))
        prev_end = max(prev_end, end)
    return out


def _downtime_bound(outages: list[Outage], step: float) -> float | None:
    """|downtime_s - truth| <= this: the outages' edge errors added up; with none, one sampling interval
    (a shorter outage can fall between probes). None: no bound (an outage still open, too few probes)."""
    if not outages:
        return step if math.isfinite(step) else None
    errors = [o.error_s for o in outages]
    return None if None in errors else float(sum(e for e in errors if e is not None))


def failing_since(samples: pd.DataFrame, at: float, window: float) -> float | None:
    """Send time of the first failed probe of the failing episode in progress at ``at`` (failures
    less than ``window`` seconds apart), or None when no probe failed in the ``window`` before ``at``.

    A fault marked by hand after the probes had already failed began no later than that probe.
    """
    before = samples[samples["t"] < at].sort_values("t", kind="stable")
    t = before["t"].to_numpy(dtype=float)
    bad_t = t[~before["ok"].to_numpy(dtype=bool)]
    if bad_t.size == 0 or at - bad_t[-1] >= window:
        return None
    breaks = np.flatnonzero(np.diff(bad_t) >= window)
    return float(bad_t[breaks[-1] + 1] if breaks.size else bad_t[0])


def rto_per_fault(samples: pd.DataFrame, fault_times: list[float], **analysis: Any) -> list[RtoResult]:
    """Each fault's own RTO: from its injection to the start of the last stable run before the next
    fault (the last fault's: to the end of the samples). A fault not recovered before the next one
    was injected runs on into the next one's window (never understated)."""
    times = sorted(fault_times)
    out = []
    for i, t in enumerate(times):
        result = None
        for j in range(i, len(times)):
            until = times[j + 1] if j + 1 < len(times) else None
            result = analyze_rto(samples, t, until=until, **analysis)
            if result.recovered:
                break
        assert result is not None
        out.append(result)
    return out


def _analyze_run(
    run_dir: str, fault_at: float | None, stability_window: float, max_error_rate: float, slow_after: float | None
) -> RtoResult:
    d = Path(run_dir)
    meta = availability_meta(d)
    return analyze_rto(
        load_availability(d),
        fault_time(d, fault_at),
        stability_window=stability_window,
        max_error_rate=max_error_rate,
        slow_after=slow_after,
        timeout=float(meta.get("timeout_s", DEFAULT_TIMEOUT)),
        interval=meta.get("interval_s"),
    )


def rto_report(
    run_dir: str,
    fault_at: float | None = None,
    stability_window: float = 5.0,
    max_error_rate: float = 0.0,
    slow_after: float | None = None,
) -> dict[str, Any]:
    """Chaos Toolkit probe: every RTO figure with its bounds (``rto_s`` is null when not recovered).

    ``fault_at`` defaults to the first ``fault.inject`` event in the run's events.jsonl; raises
    when there are no samples or no fault time.
    """
    return _analyze_run(run_dir, fault_at, stability_window, max_error_rate, slow_after).to_dict()


def rto_seconds(
    run_dir: str,
    fault_at: float | None = None,
    stability_window: float = 5.0,
    max_error_rate: float = 0.0,
    slow_after: float | None = None,
) -> float:
    """Chaos Toolkit probe: the measured RTO in seconds. Raises ``RtoNotObserved`` when there is none."""
    result = _analyze_run(run_dir, fault_at, stability_window, max_error_rate, slow_after)
    if result.rto_s is None:
        raise RtoNotObserved(
            f"no sustained recovery within the samples: RTO > {result.rto_lower_s:.3f} s "
            f"(observed until {result.observed_until_s:.3f} s after the fault)"
        )
    return result.rto_s


def service_recovered(
    run_dir: str, fault_at: float | None = None, stability_window: float = 5.0, max_error_rate: float = 0.0
) -> bool:
    """Chaos Toolkit probe: True when sustained recovery was observed after the fault."""
    return _analyze_run(run_dir, fault_at, stability_window, max_error_rate, None).recovered
