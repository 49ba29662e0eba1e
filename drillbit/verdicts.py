"""Judge measurements against SLAs: one verdict per SLA, and the drill's outcome.

PASS only when the number was measured, holds, and nothing makes it untrustworthy. A fault that
did not land makes every fault-dependent verdict INCONCLUSIVE (an RTO of a fault that never
happened proves nothing); a saturated or incomplete generator makes latency and error verdicts
INCONCLUSIVE. A measured breach stays FAIL whatever else happened: it was observed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drillbit.core.results import (
    AlertsMeasurement,
    LatencyStats,
    Measurements,
    Outcome,
    Verdict,
    VerdictSet,
    exit_code_for,
)
from drillbit.probes.alerts import alert_bound_s
from drillbit.probes.drift import P95_RATIO_METRIC, P95_SLOPE_METRIC, drift_reading
from drillbit.sla import Sla

__all__ = ["AVAILABILITY_PHASES", "Reading", "drill_problems", "evaluate"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}  # fmt: skip
#: the latency metrics, in the order of _percentile's tuples
_PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
#: metrics the load generator measures (need a trustworthy generator)
LOAD_METRICS = {"p50_ms", "p95_ms", "p99_ms", "errors", "error_rate_percent", "scale_out_p95_ms", P95_SLOPE_METRIC,
                P95_RATIO_METRIC}  # fmt: skip

@dataclass(frozen=True)
class Reading:
    """What a reader found for one SLA."""

    value: float | None
    how: str  # how it was measured
    why: str | None = None  # no value: why (INCONCLUSIVE)
    breach: str | None = None  # a failure observed besides the number: FAIL whatever the value
    doubt: str | None = None  # a value, but the samples do not vouch for it: INCONCLUSIVE unless it breaches


def _where(sla: Sla, default: str = "all") -> str:
    source = "the spike's requests" if sla.source == "spike" else sla.request or "all requests"
    return f"{source}, phases {', '.join(sla.phases or [default])}"


def _table(m: Measurements, sla: Sla) -> dict[str, LatencyStats] | None:
    """Phase -> stats of the requests the SLA judges: the spike's or the load's, all or one request name."""
    if sla.source == "spike":
        return None if m.spike is None or sla.request else m.spike.phases
    if m.latency is None:
        return None
    return m.latency.by_request.get(sla.request) if sla.request else m.latency.phases


def _phase_stats(m: Measurements, sla: Sla) -> tuple[list[LatencyStats], list[str], str | None]:
    """The SLA's phases' stats, the names of the phases, or why there are none."""
    table = _table(m, sla)
    if table is None:
        section = "spike" if sla.source == "spike" else "latency"
        return [], [], m.unmeasured.get(section, f"no {section} measurements")
    wanted = sla.phases or ["all"]
    missing = [p for p in wanted if p not in table]
    if missing:
        return [], wanted, f"phase(s) {', '.join(missing)} not in the run (phases: {', '.join(table)})"
    empty = [p for p in wanted if not table[p].ok and not table[p].errors]
    if empty:  # a phase without a request that had an outcome cannot vouch for anything
        return [], wanted, f"no answered request in phase(s) {', '.join(empty)}"
    return [table[p] for p in wanted], wanted, None


def _all_failed(stats: list[LatencyStats], phases: list[str]) -> str | None:
    dead = [p for p, s in zip(phases, stats, strict=True) if s.errors and not s.ok]
    return f"every request in phase(s) {', '.join(dead)} failed" if dead else None


def _latency(m: Measurements, sla: Sla) -> Reading:
    stats, phases, why = _phase_stats(m, sla)
    where = _where(sla)
    if why:
        return Reading(None, where, why)
    kind: Literal["all", "successful"] = "all" if sla.failed == "include" else "successful"
    values = [v for s in stats if (v := _percentile(s, sla.metric, kind)) is not None]
    if not values:
        return Reading(None, where, "no request answered without error in those phases", _all_failed(stats, phases))
    failed = sum(s.errors for s in stats)
    if any(s.closed_model for s in stats):
        model = ("uncorrected: closed model (no intended send times), so a stall is not corrected for coordinated "
                 "omission")  # fmt: skip
    else:
        unc = [v for s in stats if (v := _percentile(s, sla.metric, "uncorrected")) is not None]
        model = f"corrected for coordinated omission (from the intended send time; uncorrected {max(unc):.1f} ms)"
    failures = (f"{failed} failed or timed-out requests are in the percentile at their time to failure"
                if sla.failed == "include" else f"this SLA excludes failures: {failed} failed requests are not in "
                                                "the percentile")  # fmt: skip
    how = f"worst phase of {where}; HdrHistogram of every request with an outcome, {model}; {failures}"
    return Reading(max(values), how, breach=_all_failed(stats, phases))


def _percentile(s: LatencyStats, metric: str, kind: Literal["all", "successful", "uncorrected"]) -> float | None:
    """The stats' ``metric`` (p50_ms, p95_ms or p99_ms): over every request with an outcome, corrected
    (``all``), over the successful ones only, or uncorrected."""
    values = {"all": (s.p50_ms, s.p95_ms, s.p99_ms),
              "successful": (s.successful_p50_ms, s.successful_p95_ms, s.successful_p99_ms),
              "uncorrected": (s.uncorrected_p50_ms, s.uncorrected_p95_ms, s.uncorrected_p99_ms)}[kind]  # fmt: skip
    return values[_PERCENTILES.index(metric)]


def _errors(m: Measurements, sla: Sla) -> Reading:
    stats, _phases, why = _phase_stats(m, sla)
    where = _where(sla)
    if why:
        return Reading(None, where, why)
    errors, answered = sum(s.errors for s in stats), sum(s.errors + s.ok for s in stats)
    how = f"failed requests ({where}; {answered} with an outcome)"
    if sla.metric == "errors":
        return Reading(float(errors), how)
    return Reading(100.0 * errors / answered if answered else None, how, None if answered else "no request answered")


def _rto(m: Measurements, sla: Sla) -> Reading:
    r = m.rto
    if r is None:
        return Reading(None, "availability probe", m.unmeasured.get("rto", "not measured"))
    how = (f"synthetic write probe every {r.interval_s:.2f} s, recovered = the last run of success lasting to the "
           f"end (at least {r.stability_window_s:.0f} s); {len(r.outages)} outage(s) after the fault; error bound "
           f"±{r.error_bound_s:.3f} s; fault time: {r.fault_time or 'injected'}")  # fmt: skip
    if sla.metric == "rto_s" and not r.recovered:
        # not recovered within the observation: the RTO is at least that long; if that already
        # breaches the target, it is a FAIL (a region that never fails over must not exit 3)
        floor = r.observed_until_s
        if not _OPS[sla.op](floor, sla.target):
            return Reading(floor, how + f"; not recovered: RTO > {floor:.1f} s")
        return Reading(None, how, f"no sustained recovery within {floor:.1f} s of the fault")
    if sla.metric == "detect_s" and r.detect_s is None:
        return Reading(None, how, "no probe failed after the fault: nothing to detect")
    value = {"rto_s": r.rto_s, "detect_s": r.detect_s, "downtime_s": r.downtime_s}[sla.metric]
    doubts = [r.coverage_problem] if r.coverage_problem else []
    if sla.metric == "downtime_s":
        bound = r.downtime_error_bound_s
        how += f"; downtime error bound {'unknown' if bound is None else f'±{bound:.3f} s'}"
        if bound is None and value is not None and _OPS[sla.op](value, sla.target):
            doubts.append(f"the downtime {value:.3f} s has no error bound (an outage still open when the samples "
                          "ended, or too few probes): it is a floor")  # fmt: skip
    else:
        bound = r.error_bound_s if sla.metric == "rto_s" else None
    if value is not None and bound is not None and math.isfinite(bound) and _straddles(sla, value, bound):
        doubts.append(f"{value:.3f} s ± {bound:.3f} s straddles the target {sla.op} {sla.target:g} s: the truth may "
                      "breach it (sample more often)")  # fmt: skip
    return Reading(value, how, doubt="; ".join(doubts) or None)


def _straddles(sla: Sla, value: float, bound: float) -> bool:
    """The estimate meets the target but somewhere within its error bound the truth would not."""
    check = _OPS[sla.op]
    return check(value, sla.target) and not (check(value - bound, sla.target) and check(value + bound, sla.target))


def _rpo(m: Measurements, sla: Sla) -> Reading:
    r = m.rpo
    if r is None:
        return Reading(None, "heartbeat writes", m.unmeasured.get("rpo", "not measured"))
    split = r.lost_after_fault
    how = (f"{r.writes} sequenced heartbeat writes, read back after recovery: {r.lost} acknowledged and "
           f"lost, {r.indeterminate} indeterminate (never counted as lost)")  # fmt: skip
    if split:
        how += (f"; split-brain symptom: {split} write(s) acknowledged after the fault and then lost (an old primary "
                f"still acknowledging?)")  # fmt: skip
    value = max(0.0, r.window_s) if sla.metric == "rpo_s" else float(r.lost)
    return Reading(value, how, doubt=r.coverage_problem)


#: "while the fault runs": the phases an availability SLA covers unless it names others
AVAILABILITY_PHASES = ["fault", "recovery"]


def _availability(m: Measurements, sla: Sla) -> Reading:
    a = m.availability
    if a is None:
        return Reading(None, "availability probe", m.unmeasured.get("availability", "not measured"))
    phases = sla.phases or AVAILABILITY_PHASES
    how = f"share of good synthetic write probes ({a.probes} probes every {a.interval_s} s)"
    doubt = a.coverage_problem
    if phases == ["all"]:
        return Reading(a.percent, how + ", whole drill", doubt=doubt)
    present = [a.phases[p] for p in phases if p in a.phases]
    probes, failed = sum(p.probes for p in present), sum(p.failed for p in present)
    if not probes:
        return Reading(None, how, f"no probe in phases {', '.join(phases)}")
    return Reading(100.0 * (probes - failed) / probes, how + f", phases {', '.join(phases)}", doubt=doubt)


def _replicas(m: Measurements, sla: Sla) -> Reading:
    r = m.replicas
    if r is None:
        return Reading(None, "replica samples", m.unmeasured.get("replicas", "not measured"))
    how = f"replica samples every {r.interval_s:.1f} s (late by at most one interval)"
    if r.restored_s is None:
        floor = r.observed_until_s
        if floor is not None and not _OPS[sla.op](floor, sla.target):
            # the drill ran past the target and the replicas were still not back: that is a failure
            return Reading(floor, how + f"; never restored: > {floor:.1f} s")
        return Reading(None, how, "the replicas were not all ready again within the drill")
    return Reading(r.restored_s, how)


def _autoscaling(m: Measurements, sla: Sla) -> Reading:
    a = m.autoscaling
    if a is None:
        return Reading(None, "replica samples and load step", m.unmeasured.get("autoscaling", "not measured"))
    how = (f"from the load step, replica samples every {a.interval_s:.1f} s; scale-out = desired replicas above "
           f"the {a.desired_before} before the step; new replica = an identity not seen before scale-out, "
           f"ready; target {a.target} replicas")  # fmt: skip
    key, value = {"first_new_replica_s": ("first_new_ready_s", a.first_new_ready_s),
                  "capacity_s": ("capacity_s", a.capacity_s),
                  "scale_out_p95_ms": ("worst_p95_ms", a.worst_p95_ms)}[sla.metric]  # fmt: skip
    if value is None:
        return Reading(None, how, f"{key} not observed within the drill")
    return Reading(value, how)


def _chain(a: AlertsMeasurement) -> str:
    c = a.chain

    def sec(v: float | None) -> str:
        return "?" if v is None else f"{v:g} s"

    fors = ", ".join(f"{n} {a.chain.for_s[n]:g} s" for n in a.expected if n in c.for_s) or "?"
    bounds = {n: alert_bound_s(c, n) for n in a.expected}
    known = (f"; each expected alert is notified at most {max(bounds.values()):g} s after its condition became "
             "true (for + scrape + evaluation + group_wait, or group_interval when its group already existed, "
             "+ 1 s of delivery and clocks)") if bounds and not c.problems else ""  # fmt: skip
    doubt = f"; chain partly unknown: {'; '.join(c.problems)}" if c.problems else ""
    severities = sorted({c.severity.get(n, "") for n in a.expected})
    waits = ", ".join(f"{s or 'default'} {sec(c.group_wait_by_severity.get(s, c.group_wait_s))}/"
                      f"{sec(c.group_interval_by_severity.get(s, c.group_interval_s))}" for s in severities) or "?"
    return (f"fault -> first firing notification at drillbit's receiver ({a.receiver}, {a.notifications} "
            f"notifications); chain: scrape {sec(c.scrape_interval_s)} + evaluation {sec(c.evaluation_interval_s)} "
            f"+ for ({fors}) + group_wait/group_interval ({waits}) + delivery{known}{doubt}")  # fmt: skip


def _alerts(m: Measurements, sla: Sla) -> Reading:
    a = m.alerts
    if a is None:
        return Reading(None, "Alertmanager webhooks", m.unmeasured.get("alerts", "not measured"))
    how = _chain(a)
    doubt = (f"alert(s) {', '.join(a.firing_before_fault)} already firing before the fault: the target was not "
             "healthy to begin with") if a.firing_before_fault else None  # fmt: skip
    never = f"expected alert(s) {', '.join(a.missing)} never fired" if a.missing else None
    if a.not_yet:  # the drill ended before they were due: not a miss, not a pass
        short = (f"the drill listened {a.observed_s or 0:.1f} s after the fault, less than {', '.join(a.not_yet)} "
                 "can take (for + scrape + evaluation + group_wait)")  # fmt: skip
        doubt = f"{doubt}; {short}" if doubt else short
    if sla.metric == "alerts_missing":
        return Reading(float(len(a.missing)), how, doubt=doubt)
    if sla.metric == "unexpected_critical_alerts":
        extra = f"; fired: {', '.join(a.unexpected_critical)}" if a.unexpected_critical else ""
        return Reading(float(len(a.unexpected_critical)), how + extra, doubt=doubt)
    if not a.expected:
        why = "the drill expects no alert" + (f" ({'; '.join(f'{k}: {v}' for k, v in a.not_expected.items())})"
                                               if a.not_expected else "")  # fmt: skip
        return Reading(None, how, why + ": no latency to measure")
    return Reading(a.latency_s, how, "no expected alert fired", breach=never, doubt=doubt)


def _integrity(m: Measurements, sla: Sla) -> Reading:
    r = m.integrity
    if r is None:
        return Reading(None, "trading-integrity checks after recovery", m.unmeasured.get("integrity", "not measured"))
    found = [f"{c.name} {c.violations}" for c in r.checks if c.violations]
    how = (f"{len(r.checks)} read-only SQL checks ({r.source}) after recovery, {r.acked_orders} acknowledged "
           f"heartbeat orders among them; violations: {', '.join(found) or 'none'}")  # fmt: skip
    doubt = (f"check(s) {', '.join(r.failed_checks)} could not run: their invariants are unverified"
             if r.failed_checks else None)  # fmt: skip
    return Reading(float(r.violations), how, doubt=doubt)


def _promql(m: Measurements, sla: Sla) -> Reading:
    p = m.promql
    if p is None:
        return Reading(None, "the target's Prometheus", m.unmeasured.get("promql", "not measured"))
    figure = p.figures.get(sla.promql or "")
    if figure is None:
        return Reading(None, "the target's Prometheus", f"no query named {sla.promql!r} under the experiment's promql:")
    which = "at the drill's end" if sla.metric == "promql_value" else f"the maximum over the drill (step {p.step:g} s)"
    how = f"PromQL {figure.query!r} on {p.prometheus_url}, {which}: the target's own metrics, beside drillbit's"
    value = figure.value if sla.metric == "promql_value" else figure.max
    return Reading(value, how, figure.error or "not measured")


def _pitr(m: Measurements, sla: Sla) -> Reading:
    p = m.pitr
    if p is None:
        return Reading(None, "point-in-time restore", m.unmeasured.get("pitr", "not measured"))
    how = (f"restore of base backup {p.backup_id or '?'} from {p.bucket or 'the bucket'} into a fresh node, "
           f"recovery_target_time = T; rows compared with the source (created before T - {p.margin_s:g} s), heartbeat "
           f"orders with the client's ledger ({p.heartbeat_acked_before_target} acknowledged before T)")  # fmt: skip
    failed = None if p.restored else f"the restore did not produce a serving node: {p.error or 'no reason recorded'}"
    if sla.metric == "restore_time_s":
        if failed:
            return Reading(None, how, failed, breach=failed)
        return Reading(p.restore_time_s, how, "the drill had no disaster (drop_orders) to measure from")
    if sla.metric in ("backup_age_s", "wal_archive_age_s"):
        value = p.backup_age_s if sla.metric == "backup_age_s" else p.wal_archive_age_s
        return Reading(value, how, "no base backup or archived WAL was found before the restore")
    if failed:
        return Reading(None, how, failed)
    if sla.metric == "pitr_lost_writes":
        doubt = None
        if not p.heartbeat_acked_before_target:
            doubt = "no heartbeat order was acknowledged before T: the ledger proves nothing"
        elif p.archive_caught_up is False:
            doubt = "the archive had not caught up when the restore began"
        return Reading(None if p.lost_writes is None else float(p.lost_writes), how,
                       "no heartbeat ledger to check the restore against", doubt=doubt)  # fmt: skip
    value = p.overshoot if sla.metric == "pitr_overshoot" else p.mismatched_rows
    return Reading(None if value is None else float(value), how, "not measured")


def _replication_lag(m: Measurements, sla: Sla) -> Reading:
    r = m.replication_lag
    if r is None:
        return Reading(None, "replica lag reads", m.unmeasured.get("replication_lag", "not measured"))
    how = (f"every replica's lag read from the databases every {r.interval_s:g} s ({r.samples} reads, {r.failed} "
           f"with a replica unread); a sampled peak is at most {r.error_bound_s:.2f} s below the true one")  # fmt: skip
    if sla.metric == "replication_catch_up_s":
        why = ("no replica lag was healed in this drill" if r.healed_at is None
               else "the replicas had not caught up (within 1 s) by the end of the drill")  # fmt: skip
        return Reading(r.caught_up_s, how + "; from the last heal to every replica within 1 s", why)
    wanted = sla.phases or ["all"]
    phases = list(r.phases) if wanted == ["all"] else wanted
    missing = [p for p in phases if p not in r.phases]
    if missing or not phases:
        return Reading(None, how, f"no lag read in phase(s) {', '.join(missing or wanted)}")
    peaks = [peak for p in phases if (peak := r.phases[p].peak_s) is not None]
    how += f"; worst replica's peak in phase(s) {', '.join(wanted)}"
    if not peaks:
        return Reading(None, how, f"every lag read in phase(s) {', '.join(wanted)} failed")
    value = max(peaks)
    doubts = []
    failed = sum(r.phases[p].failed for p in phases)
    if failed and sla.op in ("<", "<="):  # a read that failed may have hidden a higher lag; never a lower one
        doubts.append(f"{failed} lag read(s) in those phases failed: the lag between them is unknown")
    if sla.op in ("<", "<=") and _straddles(sla, value, r.error_bound_s):
        doubts.append(f"{value:.2f} s + the {r.error_bound_s:.2f} s sampling bound reaches the target {sla.op} "
                      f"{sla.target:g} s")  # fmt: skip
    return Reading(value, how, doubt="; ".join(doubts) or None)


def _marketdata(m: Measurements, sla: Sla) -> Reading:
    md = m.marketdata
    if md is None:
        return Reading(None, "market-data probe", m.unmeasured.get("marketdata", "not measured"))
    wanted = sla.phases or ["all"]
    how = (f"the probe's own trades every {md.interval_s:g} s on {md.symbol}, from the buy's acknowledgement to the "
           f"trade on the stream (or in a gap fill), nearest rank, unseen trades infinitely late; every symbol's "
           f"sequence numbers checked; phases {', '.join(wanted)}")  # fmt: skip
    missing = [p for p in wanted if p not in md.phases]
    if missing:
        return Reading(None, how, f"no market-data sample in phase(s) {', '.join(missing)}")
    phases = [md.phases[p] for p in wanted]
    doubts = []
    if md.reader_died:
        doubts.append(f"the stream reader died: {md.reader_died}")
    if sla.metric == "marketdata_lost":
        unfilled = sum(p.unfilled_gaps for p in phases)
        if unfilled:
            doubts.append(f"{unfilled} gap(s) could not be filled: whether their trades were lost is unknown")
        return Reading(float(sum(p.lost for p in phases)), how + "; trades skipped and absent from the history, "
                       "plus probe trades never seen", doubt="; ".join(doubts) or None)  # fmt: skip
    if sla.metric == "marketdata_gaps":
        return Reading(float(sum(p.gap_trades for p in phases)), how + "; trades the stream skipped",
                       doubt="; ".join(doubts) or None)  # fmt: skip
    unseen = [f"{p.unseen} of {p.trades + p.unseen} in {name}" for name, p in zip(wanted, phases, strict=True)
              if p.p95_ms is None and p.unseen]  # fmt: skip
    if unseen:
        breach = (f"probe trades never seen on the feed ({'; '.join(unseen)}): the p95 lies beyond every trade "
                  "that was seen")  # fmt: skip
        return Reading(None, how, breach, breach=breach)
    values = [p.p95_ms for p in phases]
    if any(v is None for v in values):
        empty = [name for name, p in zip(wanted, phases, strict=True) if p.p95_ms is None]
        return Reading(None, how, f"no probe trade was acknowledged in phase(s) {', '.join(empty)} "
                                  f"({sum(p.order_errors for p in phases)} probe order(s) failed)")  # fmt: skip
    if sum(p.trades + p.unseen for p in phases) < 20 and sla.op in ("<", "<="):
        doubts.append("fewer than 20 probe trades: the p95 is their worst but one")
    value = max(v for v in values if v is not None)
    return Reading(value, how + "; worst phase", doubt="; ".join(doubts) or None)


def _drift(m: Measurements, sla: Sla) -> Reading:
    if m.drift is None:
        return Reading(None, "harness samples and request records", m.unmeasured.get("drift", "not measured"))
    r = drift_reading(m.drift, sla.metric, sla.op, sla.target)
    return Reading(r.value, r.how, r.why, doubt=r.doubt)


_READERS: dict[str, Callable[[Measurements, Sla], Reading]] = {
    "rto_s": _rto, "detect_s": _rto, "downtime_s": _rto, "rpo_s": _rpo, "lost_writes": _rpo,
    "p50_ms": _latency, "p95_ms": _latency, "p99_ms": _latency, "errors": _errors, "error_rate_percent": _errors,
    "availability_percent": _availability, "replicas_restored_s": _replicas,
    "first_new_replica_s": _autoscaling, "capacity_s": _autoscaling, "scale_out_p95_ms": _autoscaling,
    "alert_latency_s": _alerts, "alerts_missing": _alerts, "unexpected_critical_alerts": _alerts,
    "promql_value": _promql, "promql_max": _promql,
    "integrity_violations": _integrity,
    "restore_time_s": _pitr, "pitr_lost_writes": _pitr, "pitr_overshoot": _pitr, "pitr_mismatched_rows": _pitr,
    "backup_age_s": _pitr, "wal_archive_age_s": _pitr,
    "replication_lag_s": _replication_lag, "replication_catch_up_s": _replication_lag,
    "marketdata_latency_p95_ms": _marketdata, "marketdata_lost": _marketdata, "marketdata_gaps": _marketdata,
    "harness_memory_slope_mb_min": _drift, "p95_drift_ms_per_10min": _drift, "p95_drift_ratio": _drift,
}  # fmt: skip


def drill_problems(m: Measurements) -> tuple[list[str], list[str]]:
    """Drill-wide reasons for doubt: (fault problems: every verdict; load problems: load verdicts)."""
    fault: list[str] = []
    if m.fault_at is None:
        fault.append("no fault was injected, marked or detected")
    fault += [f"fault {f.activity!r} did not land: {f.error}" for f in m.faults if not f.landed]
    load: list[str] = []
    lat = m.latency
    if lat is not None and lat.generator_saturated:
        load.append("the load generator was saturated: " + "; ".join(lat.saturation_reasons))
    if lat is not None and lat.lost_parts:
        load.append(f"request records lost: {len(lat.lost_parts)} part file(s) unreadable "
                    f"({', '.join(lat.lost_parts[:5])}): a generator process was killed while writing them, "
                    "so up to a part's few seconds of requests each are missing from the percentiles")  # fmt: skip
    elif lat is not None and (lat.lost_in_transit or lat.unaccounted_workers):
        silent = lat.unaccounted_workers
        load.append(f"request records lost in transit from remote workers: {lat.lost_in_transit} sent and never "
                    "received" + (f"; worker(s) {', '.join(silent)} never said what they sent" if silent else "")
                    + ": the percentiles would understate the run")  # fmt: skip
    elif lat is not None and lat.generator_complete is False:
        load.append("the load generator did not stop cleanly: its records are incomplete")
    if lat is not None and lat.generator_saturated is None:
        load.append("the load generator left no verdict on itself (no load.json): saturation unknown")
    if m.alerts is not None and m.alerts.firing_before_fault:
        fault.append(f"alert(s) {', '.join(m.alerts.firing_before_fault)} already firing before the fault: the "
                     "target was not healthy to begin with")  # fmt: skip
    if m.experiment is not None and m.experiment.deviated:
        fault.append("the steady-state hypothesis did not hold after the method (chaostoolkit: deviated)")
    return fault, load


def _saturated_load(m: Measurements, sla: Sla) -> bool:
    """The SLA reads the drill's load and the generator that measured it was saturated."""
    return sla.metric in LOAD_METRICS and sla.source == "load" and m.latency is not None \
        and bool(m.latency.generator_saturated)  # fmt: skip


def _judge(key: str, sla: Sla, m: Measurements, fault_doubts: list[str], load_doubts: list[str]) -> Verdict:
    reading = _READERS[sla.metric](m, sla)
    value, how, why = reading.value, reading.how, reading.why
    if value is not None and not math.isfinite(value):
        value, why = None, "not a finite number"
    # a fault that did not land or an interrupted drill puts every verdict in doubt (what was
    # measured is not what was planned); a doubtful generator, the verdicts it measured; samples
    # that do not cover the fault through recovery, the verdicts read from them
    doubts = fault_doubts + (load_doubts if sla.metric in LOAD_METRICS else [])
    doubts += [reading.doubt] if reading.doubt else []
    reason: str | None
    if reading.breach:
        verdict, reason = Outcome.FAIL, reading.breach
    elif value is None:
        verdict, reason = Outcome.INCONCLUSIVE, why
    elif not _OPS[sla.op](value, sla.target) and _saturated_load(m, sla):
        # the generator's own delays are in the figure (and its timeouts in the errors): a breach it
        # measured says the generator could not keep up, not that the service is slow
        assert m.latency is not None
        verdict, reason = Outcome.INCONCLUSIVE, (
            f"measured {value:.4g} {sla.unit}, target {sla.op} {sla.target:g} {sla.unit}, but the load generator was "
            f"saturated ({'; '.join(m.latency.saturation_reasons) or 'see load.json'}): its own delays are in "
            "the figure, so it is not evidence that the service is slow")  # fmt: skip
    elif not _OPS[sla.op](value, sla.target):
        verdict, reason = Outcome.FAIL, f"measured {value:.4g} {sla.unit}, target {sla.op} {sla.target:g} {sla.unit}"
    elif doubts:
        verdict, reason = Outcome.INCONCLUSIVE, "; ".join(doubts)
    else:
        verdict, reason = Outcome.PASS, None
    return Verdict(sla=key, requirement=sla.requirement, requirement_text=sla.text, metric=sla.metric, op=sla.op,
                   target=sla.target, unit=sla.unit, measured=value, verdict=verdict, how=how,
                   reason=reason)  # fmt: skip


def evaluate(m: Measurements, slas: dict[str, Sla], *, interrupted: bool = False) -> VerdictSet:
    fault_doubts, load_doubts = drill_problems(m)
    if interrupted:  # the fault was cut short (and rolled back early): what it did is not what was planned
        fault_doubts.append("the drill was interrupted before it finished")
    verdicts = [_judge(key, sla, m, fault_doubts, load_doubts) for key, sla in slas.items()]
    reasons = fault_doubts + load_doubts
    if any(v.verdict is Outcome.FAIL for v in verdicts):
        outcome = Outcome.FAIL
    elif reasons or not verdicts or any(v.verdict is Outcome.INCONCLUSIVE for v in verdicts):
        outcome = Outcome.INCONCLUSIVE
    else:
        outcome = Outcome.PASS
    return VerdictSet(outcome=outcome, exit_code=exit_code_for(outcome), verdicts=verdicts,
                      inconclusive_reasons=reasons)  # fmt: skip
