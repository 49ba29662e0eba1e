"""The sections of ``measurements.json``, typed: what each analyzer found, field for field.

Each model's fields are the JSON keys the analyzers write (``drillbit.probes`` and
``drillbit.analysis``), so a measurements.json already on disk loads unchanged. Every section
forbids unknown keys (its full key set is the analyzer's) except ``load``, which is the load
generator's own file (see :class:`LoadMeasurement`). Fields ``drillbit.analysis`` adds to an
analyzer's result, and fields older run directories lack, default to ``None`` (or empty).

JSON has no NaN: a NaN (e.g. a sampling interval from a single sample) is written as ``null``;
a field typed :data:`NanFloat` reads that ``null`` back as NaN.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "AlertChain",
    "AlertRecord",
    "AlertsMeasurement",
    "AutoscalingMeasurement",
    "AvailabilityMeasurement",
    "AvailabilityPhase",
    "DriftMeasurement",
    "ExperimentMeasurement",
    "FaultRto",
    "IntegrityCheckResult",
    "IntegrityMeasurement",
    "IntegrityViolation",
    "LagPhase",
    "LatencyDrift",
    "LatencyMeasurement",
    "LatencyStats",
    "LatencyWindow",
    "LoadMeasurement",
    "MarketDataMeasurement",
    "MarketDataPhase",
    "NanFloat",
    "PitrMeasurement",
    "PitrTableDiff",
    "ProcessMemory",
    "PromqlFigure",
    "PromqlMeasurement",
    "ReplicasMeasurement",
    "ReplicationLagMeasurement",
    "RpoMeasurement",
    "RtoMeasurement",
    "RtoOutage",
    "SamplerCoverage",
    "SpikeDelivery",
    "SpikeMeasurement",
]


def _null_is_nan(value: Any) -> Any:
    return math.nan if value is None else value


#: a float that may be NaN (written as ``null``, read back as NaN)
NanFloat = Annotated[float, BeforeValidator(_null_is_nan)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplerCoverage(_Section):
    """What one sampler covered (``drillbit.probes.coverage.Coverage``)."""

    sampler: str
    interval_s: NanFloat
    max_gap_s: NanFloat
    samples: int
    first_t: float | None
    last_t: float | None
    gaps: list[tuple[float, float]]  # (last sample before, first sample after) for every gap > max_gap_s
    skipped_ticks: int | None  # None: not recorded (samples from another tool)
    probe_errors: int | None
    probe_error_times: list[float]
    died: str | None
    died_at: float | None


class RtoOutage(_Section):
    """One failing run after the fault (``drillbit.probes.availability.Outage.to_dict``)."""

    start: float
    end: float
    start_s: float
    end_s: float
    length_s: float
    failed_probes: int
    error_s: float | None = None  # |length_s - truth| <= this; None: still failing at the end (or an older run)


class FaultRto(_Section):
    """One injected fault's own RTO (``rto.per_fault``)."""

    fault_id: str | None
    activity: str
    injected_at: float
    recovered: bool
    rto_s: float | None
    rto_upper_s: float | None
    error_bound_s: NanFloat
    downtime_s: float
    until: float | None


class RtoMeasurement(_Section):
    """``drillbit.probes.availability.RtoResult``, plus what ``drillbit.analysis`` adds (the last six fields)."""

    fault_at: float
    recovered: bool
    rto_s: float | None
    rto_lower_s: float | None
    rto_upper_s: float | None
    recovered_at: float | None
    detect_s: float | None
    downtime_s: float
    outages: list[RtoOutage]
    downtime_error_bound_s: float | None = None  # |downtime_s - truth| <= this; None: open-ended (or an older run)
    failed_probes: int
    probes: int
    interval_s: NanFloat
    error_bound_s: NanFloat
    stability_window_s: float
    max_error_rate: float
    slow_after_s: float
    timeout_s: float
    observed_until_s: float
    until: float | None
    first_failed_at: float | None
    method: str
    fault_time: str | None = None  # where the fault time came from, in words
    marked_at: float | None = None  # a marked fault: the mark, and the first failed probe before it
    failed_before_mark_at: float | None = None
    per_fault: list[FaultRto] = Field(default_factory=list)  # injected faults only
    coverage: SamplerCoverage | None = None
    coverage_problem: str | None = None  # why the samples do not span fault -> recovery + window


class RpoMeasurement(_Section):
    """``drillbit.probes.rpo.RpoResult``, plus the heartbeat's coverage."""

    fault_at: float
    writes: int
    acked: int
    acked_before_fault: int
    lost: int
    lost_seqs: list[int]
    lost_after_fault: int
    split_brain: bool
    window_s: float
    lost_span_s: float
    indeterminate: int
    indeterminate_present: int
    indeterminate_absent: int
    indeterminate_present_seqs: list[int]
    indeterminate_absent_seqs: list[int]
    failed: int
    unexpectedly_present: list[int]
    duplicates: list[int]
    unknown_present: list[int]
    method: str
    coverage: SamplerCoverage | None = None
    coverage_problem: str | None = None


class LatencyStats(_Section):
    """One phase's requests, errors, rates and latency percentiles (corrected and uncorrected, in ms)."""

    phase: str
    window: tuple[float, float]  # the phase's window, clipped to the records (epoch s)
    count: int  # requests whose intended (closed: start) time falls in the phase
    ok: int  # answered without error
    errors: int  # failed: an error status, a timeout, a refused connection...
    not_sent: int  # due but never sent, or abandoned in flight at the stop: no outcome
    error_rate: float  # errors / (ok + errors)
    error_rate_percent: float | None  # the same in percent; None when no request had an outcome
    throughput_rps: float  # answered without error, per second of the phase
    achieved_rps: float  # sent per second
    intended_rps: float | None  # scheduled per second (open model); None under the closed model
    p50_ms: float | None  # corrected (from the intended send time), failures at their time to failure
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    uncorrected_p50_ms: float | None
    uncorrected_p95_ms: float | None
    uncorrected_p99_ms: float | None
    uncorrected_max_ms: float | None
    successful_p50_ms: float | None  # corrected, over requests answered without error only
    successful_p95_ms: float | None
    successful_p99_ms: float | None
    closed_model: bool  # no intended send times: the percentiles are uncorrected


class LatencyMeasurement(_Section):
    """``drillbit.probes.latency.LatencyReport``, plus per-request-name stats for the SLAs that name one."""

    phases: dict[str, LatencyStats]  # phase -> stats; "all": the whole run
    generator_saturated: bool | None  # None: no load.json (the generator's verdict is unknown)
    saturation_reasons: list[str] = Field(default_factory=list)
    generator_complete: bool | None = None
    # request record parts a generator process left unreadable (killed while writing one): rows lost
    lost_parts: list[str] = Field(default_factory=list)
    lost_in_transit: int = 0  # rows remote workers sent that never reached the master (requests/transit.json)
    unaccounted_workers: list[str] = Field(default_factory=list)  # remote workers that never said what they sent
    by_request: dict[str, dict[str, LatencyStats]] = Field(default_factory=dict)  # request name -> phase -> stats


class AvailabilityPhase(_Section):
    probes: int
    failed: int
    percent: float | None  # None: no probe in the phase


class AvailabilityMeasurement(_Section):
    """The share of good availability probes, over the drill and per phase."""

    percent: float
    probes: int
    failed: int
    interval_s: float | None  # None: the sampler recorded no interval
    phases: dict[str, AvailabilityPhase] = Field(default_factory=dict)
    coverage_problem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _ratio_is_percent(cls, data: Any) -> Any:
        """Older run directories say ``ratio`` (0..1) where this says ``percent``."""
        if isinstance(data, dict) and "ratio" in data and "percent" not in data:
            ratio = data["ratio"]
            data = {k: v for k, v in data.items() if k != "ratio"}
            is_number = isinstance(ratio, int | float) and not isinstance(ratio, bool)
            data["percent"] = 100.0 * ratio if is_number else ratio
        return data


class ReplicasMeasurement(_Section):
    """Fault -> every region back at its desired ready replicas (``drillbit.analysis``)."""

    restored_s: float | None  # None: not restored within the samples
    dipped: bool  # ready fell below desired after the fault
    restored_at: float | None
    interval_s: NanFloat
    observed_until_s: float | None = None  # the last sample, from the fault
    coverage: SamplerCoverage | None = None


class AutoscalingMeasurement(_Section):
    """``drillbit.probes.autoscaling.AutoscalingResult``."""

    load_step_at: float
    replicas_before: int
    desired_before: int
    target: int
    scale_out_s: float | None
    first_new_ready_s: float | None
    identified: bool
    capacity_s: float | None
    peak_ready: int
    sla_p95_ms: float | None
    worst_p95_ms: float | None
    sla_held: bool | None
    windows_judged: int
    error_rate_scale_out: float | None
    load_drop_at: float | None
    min_replicas: int
    scale_in_s: float | None
    scale_in_ready_s: float | None
    flaps: int
    direction_changes: int
    interval_s: NanFloat


class SpikeDelivery(_Section):
    """How much of the spike's intended extra rate the target answered (``drillbit.probes.spike``)."""

    intended_rps: float
    duration_s: float
    scheduled: int  # the schedule's draws (Poisson: rate x duration +- its square root)
    sent: int
    answered: int  # got an HTTP answer, whatever its status
    failed_answers: int  # answered, but failed
    answered_rps: float
    landed: bool  # answered >= LANDED_SHARE x scheduled, and the schedule was not cut short


class SpikeMeasurement(_Section):
    """The spike's own requests: per-phase latency and errors, and its delivery when its rate is known."""

    phases: dict[str, LatencyStats]
    delivery: SpikeDelivery | None = None


class ExperimentMeasurement(_Section):
    """The Chaos Toolkit journal, in brief (``drillbit.analysis``); older run directories may hold only ``status``."""

    status: str | None = None
    deviated: bool = False
    steady_state_before: bool | None = None  # None: the hypothesis was not checked
    steady_state_after: bool | None = None
    activities: int | None = None
    rollbacks: int | None = None


class LoadMeasurement(BaseModel):
    """load.json as the generator wrote it (``drillbit.load.runner.LoadResult``).

    ``extra="allow"`` and every field optional: load.json is the load generator's own account,
    written by another process (and another drillbit version, or another tool), copied here as
    it is; drillbit reads only the fields below, and a generator that leaves one out is not a
    broken run directory.
    """

    model_config = ConfigDict(extra="allow")

    profile: str | None = None
    model: str | None = None
    intended_rps: float | None = None
    achieved_rps: float | None = None
    saturated: bool | None = None
    reason: str | None = None
    reasons: list[str] = Field(default_factory=list)
    complete: bool | None = None


class PromqlFigure(_Section):
    """One named PromQL query over the drill (``drillbit.probes.promql.promql_figures``)."""

    query: str
    value: float | None = None  # at the drill's end
    min: float | None = None  # over the drill
    max: float | None = None
    measured: bool
    error: str | None = None  # why not (never a 0 in its place)


class PromqlMeasurement(_Section):
    """The target's own Prometheus figures, beside drillbit's measurements (never instead of them)."""

    prometheus_url: str
    start: float
    end: float
    step: float
    figures: dict[str, PromqlFigure] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)


class AlertChain(_Section):
    """What stands between a condition and its notification, as the monitoring itself reports it
    (Prometheus's configuration and rules, Alertmanager's routes); None where it could not be read."""

    scrape_interval_s: float | None = None
    evaluation_interval_s: float | None = None
    group_wait_s: float | None = None  # the root route's
    group_wait_by_severity: dict[str, float] = Field(default_factory=dict)  # a child route on severity="X": its
    group_interval_s: float | None = None  # the root route's (a group that still exists sends at its ticks)
    group_interval_by_severity: dict[str, float] = Field(default_factory=dict)
    for_s: dict[str, float] = Field(default_factory=dict)  # alert name -> its rule's ``for`` (the longest)
    severity: dict[str, str] = Field(default_factory=dict)  # alert name -> its rule's severity label
    problems: list[str] = Field(default_factory=list)  # what could not be read, and why


class AlertRecord(_Section):
    """One alert name's course in the drill, from the webhook notifications that reached drillbit."""

    name: str
    severity: str | None = None
    expected: bool
    fired_at: float | None = None  # startsAt of its first firing after the fault (Prometheus: when it fired)
    notified_at: float | None = None  # arrival of that firing notification at drillbit's receiver
    resolved_at: float | None = None  # endsAt of its first resolved notification after that
    resolved_notified_at: float | None = None
    # since: when its condition became true, when that is not the fault (an expect_alerts entry's since:)
    since: float | None = None
    fired_s: float | None = None  # fault (or since) -> fired_at
    notified_s: float | None = None  # fault (or since) -> notified_at (the alert latency the SLA judges)
    resolved_s: float | None = None  # recovery -> resolved notification (None: no recovery, or not seen)
    labels: dict[str, str] = Field(default_factory=dict)


class AlertsMeasurement(_Section):
    """Alert latency per expected alert (``drillbit.probes.alerts``)."""

    receiver: str  # host:port the receiver listened on
    notifications: int  # webhook posts received
    expected: list[str]  # the alerts this drill expects (conditions applied)
    not_expected: dict[str, str] = Field(default_factory=dict)  # conditional expectation -> why it did not apply
    allowed: list[str] = Field(default_factory=list)  # may fire (required: false): neither missing nor unexpected
    alerts: list[AlertRecord] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)  # expected, and silent for longer than its chain can take
    not_yet: list[str] = Field(default_factory=list)  # expected, silent, but the drill ended before it was due
    observed_s: float | None = None  # how long after the fault the receiver listened
    unexpected_critical: list[str] = Field(default_factory=list)
    firing_before_fault: list[str] = Field(default_factory=list)  # the target was not healthy to begin with
    latency_s: float | None = None  # the worst notified_s over the expected alerts that fired
    chain: AlertChain = Field(default_factory=AlertChain)


class IntegrityViolation(_Section):
    """One row a check returned: its id (first column) and the other columns, ``name=value``."""

    id: str
    detail: str | None = None


class IntegrityCheckResult(_Section):
    """One integrity check (``drillbit.probes.integrity``): its violations, or why it did not run."""

    name: str
    description: str
    violations: int | None  # None: the check did not run (error, timeout); exact up to ``truncated``
    truncated: bool = False  # more rows than the checker fetches: ``violations`` is a lower bound
    ids: list[IntegrityViolation] = Field(default_factory=list)  # the first ``max_ids``
    error: str | None = None
    elapsed_s: float


class IntegrityMeasurement(_Section):
    """The trading-integrity checks after recovery (``drillbit.probes.integrity.analyze_integrity``)."""

    checked_at: float  # epoch s: when the checker ran (after recovery)
    source: str  # the SQL file the checks came from
    acked_orders: int  # acknowledged heartbeat orders checked to exist exactly once
    violations: int  # over the checks that ran
    failed_checks: list[str]  # checks that could not run: their absence of violations proves nothing
    checks: list[IntegrityCheckResult]
    elapsed_s: float
    method: str


class LagPhase(_Section):
    """One phase's replication-lag samples: the worst replica's peak."""

    samples: int = 0  # ticks in the phase
    failed: int = 0  # ticks with a replica (or the primary) unread
    peak_s: float | None = None
    peak_bytes: int | None = None
    peak_member: str | None = None


class ReplicationLagMeasurement(_Section):
    """Every replica's lag behind the primary over the drill (``drillbit.probes.replication``); epoch seconds."""

    interval_s: float
    samples: int
    failed: int
    members: list[str]
    phases: dict[str, LagPhase]
    target_s: float | None  # the RPO target the breach is judged against (the replication_lag SLA's)
    fault_at: float | None
    breached_at: float | None  # the first sample after the fault with a replica more than target_s behind
    breached_after_fault_s: float | None
    healed_at: float | None  # the last revert of the drill's faults (e.g. heal_links)
    caught_up_at: float | None  # from then on every replica within CAUGHT_UP_S
    caught_up_s: float | None  # healed_at (else the peak) -> caught_up_at
    error_bound_s: float  # a sampled peak is at most this far below the true one (an interval + a read)


class MarketDataPhase(_Section):
    """One phase's market-data probe figures (``drillbit.probes.marketdata``); a probe trade by its acknowledgement."""

    trades: int  # probe trades seen (on the stream or in a gap fill)
    unseen: int  # probe trades never seen (counted as infinitely late in the percentiles)
    recovered_trades: int  # probe trades seen only in a gap fill
    p50_ms: float | None  # acknowledgement -> seen, nearest rank; None: no probe trade, or the rank is an unseen one
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    gaps: int  # sequence gaps on the stream (any symbol)
    gap_trades: int  # trades they skipped
    gap_trades_recovered: int  # of which the gap fill found in the trade history
    lost: int  # trades skipped and not in the history (filled gaps), plus unseen probe trades
    unfilled_gaps: int  # gaps whose fill failed: their trades' fate is unknown
    duplicates: int  # sequence numbers seen again (a failover gave a lost trade's number to a new one)
    order_errors: int  # probe orders that failed (no trade to time)
    reconnects: int  # times the reader's stream broke
    feed_changes: int  # the replica's feed went down or came back (or cut the reader off)


class MarketDataMeasurement(_Section):
    """Market-data latency and the feed's integrity over the drill (``drillbit.probes.marketdata``)."""

    interval_s: float
    symbol: str  # the probe's own symbol
    unseen_after_s: float
    streams: int  # streams the reader opened
    trades_seen: int  # trade events on the stream, every symbol
    left_pending: int  # probe trades too young to judge when the sampler stopped
    reader_died: str | None
    phases: dict[str, MarketDataPhase]  # phase -> figures; "all": the whole run


class PitrTableDiff(_Section):
    """One table of the restored node against the source (``drillbit.targets.sandbox.pointintime``)."""

    compared: int  # source rows created before T - margin
    restored_rows: int  # restored rows created before T - margin
    missing_count: int  # compared rows absent from the restored node, or differing in a column they were created with
    missing: list[int]  # their ids (the first few)
    extra_count: int  # restored rows the source never had
    extra: list[int]
    after_target_count: int  # restored rows created after T (the restore went past its target)
    after_target: list[int]


class PitrMeasurement(_Section):
    """A point-in-time restore (``drillbit.probes.pitr.analyze_pitr``); epoch seconds."""

    target_time: float  # T
    disaster_at: float | None  # the disaster's injection (drop_orders); None: the drill had none
    restored: bool  # a node was restored and served; False: ``error`` says why
    error: str | None
    bucket: str | None
    restore_time_s: float | None  # the disaster -> the restored node serving
    download_s: float | None
    replay_s: float | None
    backup_id: str | None
    backup_end_at: float | None
    backup_age_s: float | None  # the disaster -> the end of the base backup restored
    wal_archive_age_s: float | None  # how old the newest archived WAL was when the restore began
    archive_caught_up: bool | None  # the WAL up to the restore's start reached the bucket before it restored
    archive_catch_up_s: float | None
    last_replayed_commit_at: float | None
    margin_s: float
    tables: dict[str, PitrTableDiff] = Field(default_factory=dict)
    heartbeat_checked: bool = False
    heartbeat_acked_before_target: int = 0
    heartbeat_lost: int | None = None
    heartbeat_lost_seqs: list[int] = Field(default_factory=list)
    heartbeat_after_target_present: int | None = None
    heartbeat_after_target_seqs: list[int] = Field(default_factory=list)
    lost_writes: int | None  # acknowledged before T, absent after the restore (None: not restored, or no ledger)
    overshoot: int | None  # heartbeat orders sent after T and rows created after T, present after the restore
    mismatched_rows: int | None  # missing + extra rows created before T - margin


class ProcessMemory(_Section):
    """One harness process's resident memory over a soak (``drillbit.probes.drift``); MB = 10^6 bytes."""

    name: str  # e.g. "drill (pid 4242)", "worker (pid 4250)", "remote worker 1 (pid 77 on loadgen-2)"
    role: str  # drill | master | generator | worker
    pid: int
    host: str
    remote: bool  # sampled by the process itself and sent to the Locust master (drillbit.load.transit)
    samples: int  # inside the soak, after the warm-up
    interval_s: float | None  # median time between its samples
    first_t: float | None
    last_t: float | None
    covered_s: float  # last_t - first_t (0 with fewer than two samples)
    rss_first_mb: float | None  # its first sample after the warm-up
    rss_last_mb: float | None
    rss_peak_mb: float | None
    slope_mb_per_min: float | None  # least squares over the samples; None: too few of them
    slope_stderr_mb_per_min: float | None  # the slope's standard error (independent residuals assumed)
    r2: float | None  # None: a constant series (nothing for a line to explain)
    residual_sd_mb: float | None  # the samples' spread about the line
    cpu_median_percent: float | None  # median share of one core over the same samples


class LatencyWindow(_Section):
    """One fixed window of a soak's requests (by intended send time): corrected p50 and p95."""

    start: float
    end: float
    requests: int  # with an outcome (answered, failed or timed out)
    errors: int
    p50_ms: float | None  # None: no request with an outcome in the window
    p95_ms: float | None


class LatencyDrift(_Section):
    """The latency's drift over a soak: p50/p95 per fixed window and their slopes (``drillbit.probes.drift``)."""

    window_s: float
    windows: list[LatencyWindow]
    p95_slope_ms_per_10min: float | None  # least squares of the windows' p95 against their midpoints
    p95_slope_stderr_ms_per_10min: float | None
    p95_r2: float | None
    p50_slope_ms_per_10min: float | None
    p95_ratio: float | None  # the last window's p95 / the first's
    p50_ratio: float | None


class DriftMeasurement(_Section):
    """A soak's drift (``drillbit.probes.drift``): each harness process's memory slope, and the latency's."""

    start: float | None  # the soak: the load's first to last request (else the harness samples' span)
    end: float | None
    span_s: float
    span_from: str  # "requests" or "harness samples"
    warmup_s: float  # left out at the start: 10 % of the span, at most 60 s
    judged_s: float  # span_s - warmup_s
    min_soak_s: float  # a soak judged shorter than this is too short to judge
    too_short: str | None  # why the drift cannot be judged (a verdict on it is INCONCLUSIVE); None: long enough
    processes: list[ProcessMemory]
    worst_process: str | None  # the process with the steepest memory slope
    worst_slope_mb_per_min: float | None
    latency: LatencyDrift | None = None
    latency_problem: str | None = None  # why there is no latency drift (no request records...)
    method: str
