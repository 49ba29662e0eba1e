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
from typing import Any

from drillbit.results import Measurements, Outcome, Verdict, VerdictSet, exit_code_for
from drillbit.sla import Sla

__all__ = ["drill_problems", "evaluate"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}  # fmt: skip
#: metrics the load generator measures (need a trustworthy generator)
LOAD_METRICS = {"p50_ms", "p95_ms", "p99_ms", "errors", "error_rate_percent", "scale_out_p95_ms"}

Reading = tuple[float | None, str, str | None]  # value, how it was measured, why there is no value


def _phase_stats(m: Measurements, sla: Sla) -> tuple[list[dict[str, Any]], str | None]:
    lat = m.latency or {}
    table = (lat.get("by_request") or {}).get(sla.request) if sla.request else lat.get("phases")
    if table is None:
        return [], m.unmeasured.get("latency", "no latency measurements")
    wanted = sla.phases or ["all"]
    missing = [p for p in wanted if p not in table]
    if missing:
        return [], f"phase(s) {', '.join(missing)} not in the run (phases: {', '.join(table)})"
    empty = [p for p in wanted if not table[p].get("ok") and not table[p].get("errors")]
    if empty:  # a phase without an answered request cannot vouch for anything
        return [], f"no answered request in phase(s) {', '.join(empty)}"
    return [table[p] for p in wanted], None


def _latency(m: Measurements, sla: Sla) -> Reading:
    stats, why = _phase_stats(m, sla)
    where = f"{sla.request or 'all requests'}, phases {', '.join(sla.phases or ['all'])}"
    if why:
        return None, where, why
    key = sla.metric  # p50_ms / p95_ms / p99_ms
    values = [s[key] for s in stats if s.get(key) is not None]
    if not values:
        return None, where, "no successful request in those phases"
    unc = [s[f"uncorrected_{key}"] for s in stats if s.get(f"uncorrected_{key}") is not None]
    failed = sum(s.get("errors", 0) for s in stats)
    how = (f"worst phase of {where}; HdrHistogram of every answered request, corrected for coordinated omission "
           f"(from the intended send time; uncorrected {max(unc):.1f} ms); {failed} failed requests are not in "
           f"the percentile")  # fmt: skip
    return max(values), how, None


def _errors(m: Measurements, sla: Sla) -> Reading:
    stats, why = _phase_stats(m, sla)
    where = f"{sla.request or 'all requests'}, phases {', '.join(sla.phases or ['all'])}"
    if why:
        return None, where, why
    errors, answered = sum(s["errors"] for s in stats), sum(s["errors"] + s["ok"] for s in stats)
    how = f"failed requests of the load ({where}; {answered} answered)"
    if sla.metric == "errors":
        return float(errors), how, None
    return (100.0 * errors / answered if answered else None), how, None if answered else "no request answered"


def _rto(m: Measurements, sla: Sla) -> Reading:
    r = m.rto
    if r is None:
        return None, "availability probe", m.unmeasured.get("rto", "not measured")
    how = (f"synthetic write probe every {r['interval_s']:.2f} s, recovered = {r['stability_window_s']:.0f} s "
           f"continuously good; error bound ±{r['error_bound_s']:.3f} s")  # fmt: skip
    if sla.metric == "rto_s" and not r["recovered"]:
        # not recovered within the observation: the RTO is at least that long; if that already
        # breaches the target, it is a FAIL (a region that never fails over must not exit 3)
        floor = float(r["observed_until_s"])
        if not _OPS[sla.op](floor, sla.target):
            return floor, how + f"; not recovered: RTO > {floor:.1f} s", None
        return None, how, f"no sustained recovery within {floor:.1f} s of the fault"
    if sla.metric == "detect_s" and r["detect_s"] is None:
        return None, how, "no probe failed after the fault: nothing to detect"
    return r[sla.metric], how, None  # rto_s, detect_s and downtime_s are the analyzer's own keys


def _rpo(m: Measurements, sla: Sla) -> Reading:
    r = m.rpo
    if r is None:
        return None, "heartbeat writes", m.unmeasured.get("rpo", "not measured")
    how = (f"{r['writes']} sequenced heartbeat writes, read back after recovery: {r['lost']} acknowledged and "
           f"lost, {r['indeterminate']} indeterminate (never counted as lost)")  # fmt: skip
    return float(r["window_s"] if sla.metric == "rpo_s" else r["lost"]), how, None


def _availability(m: Measurements, sla: Sla) -> Reading:
    a = m.availability
    if a is None:
        return None, "availability probe", m.unmeasured.get("availability", "not measured")
    phases = sla.phases
    how = f"share of good synthetic write probes ({a['probes']} probes every {a.get('interval_s')} s)"
    if not phases:
        return a["percent"], how + ", whole drill", None
    probes = sum(a["phases"].get(p, {}).get("probes", 0) for p in phases)
    failed = sum(a["phases"].get(p, {}).get("failed", 0) for p in phases)
    if not probes:
        return None, how, f"no probe in phases {', '.join(phases)}"
    return 100.0 * (probes - failed) / probes, how + f", phases {', '.join(phases)}", None


def _replicas(m: Measurements, sla: Sla) -> Reading:
    r = m.replicas
    if r is None:
        return None, "replica samples", m.unmeasured.get("replicas", "not measured")
    how = f"replica samples every {r['interval_s']:.1f} s (late by at most one interval)"
    if r["restored_s"] is None:
        return None, how, "the replicas were not all ready again within the drill"
    return r["restored_s"], how, None


def _autoscaling(m: Measurements, sla: Sla) -> Reading:
    a = m.autoscaling
    if a is None:
        return None, "replica samples and load step", m.unmeasured.get("autoscaling", "not measured")
    how = f"from the load step, replica samples every {a['interval_s']:.1f} s; target {a['target']} replicas"
    key = {"first_new_replica_s": "first_new_ready_s", "capacity_s": "capacity_s",
           "scale_out_p95_ms": "worst_p95_ms"}[sla.metric]  # fmt: skip
    if a.get(key) is None:
        return None, how, f"{key} not observed within the drill"
    return float(a[key]), how, None


_READERS: dict[str, Callable[[Measurements, Sla], Reading]] = {
    "rto_s": _rto, "detect_s": _rto, "downtime_s": _rto, "rpo_s": _rpo, "lost_writes": _rpo,
    "p50_ms": _latency, "p95_ms": _latency, "p99_ms": _latency, "errors": _errors, "error_rate_percent": _errors,
    "availability_percent": _availability, "replicas_restored_s": _replicas,
    "first_new_replica_s": _autoscaling, "capacity_s": _autoscaling, "scale_out_p95_ms": _autoscaling,
}  # fmt: skip


def drill_problems(m: Measurements) -> tuple[list[str], list[str]]:
    """Drill-wide reasons for doubt: (fault problems: every verdict; load problems: load verdicts)."""
    fault: list[str] = []
    if m.fault_at is None:
        fault.append("no fault was injected, marked or detected")
    fault += [f"fault {f.activity!r} did not land: {f.error}" for f in m.faults if not f.landed]
    load: list[str] = []
    lat = m.latency or {}
    if lat.get("generator_saturated"):
        load.append("the load generator was saturated: " + "; ".join(lat.get("saturation_reasons") or []))
    if lat.get("generator_complete") is False:
        load.append("the load generator did not stop cleanly: its records are incomplete")
    if lat and lat.get("generator_saturated") is None:
        load.append("the load generator left no verdict on itself (no load.json): saturation unknown")
    exp = m.experiment or {}
    if exp.get("deviated"):
        fault.append("the steady-state hypothesis did not hold after the method (chaostoolkit: deviated)")
    return fault, load


def _judge(key: str, sla: Sla, m: Measurements, fault_doubts: list[str], load_doubts: list[str]) -> Verdict:
    value, how, why = _READERS[sla.metric](m, sla)
    if value is not None and not math.isfinite(value):
        value, why = None, "not a finite number"
    # a fault that did not land or an interrupted drill puts every verdict in doubt (what was
    # measured is not what was planned); a doubtful generator, the verdicts it measured
    doubts = fault_doubts + (load_doubts if sla.metric in LOAD_METRICS else [])
    if value is None:
        verdict, reason = Outcome.INCONCLUSIVE, why
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
