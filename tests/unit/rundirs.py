"""Synthetic run directories for report tests: PASS, FAIL, INCONCLUSIVE and interrupted drills.

Every file is what the drill would write: real Parquet in the ``drillbit.core.rundir`` schemas
(through ``drillbit.probes.samplers.ParquetSink``), events through ``drillbit.core.events.EventLog``, the
contract models through ``drillbit.core.results.write_model``, and measurements from the real
analyzers run over the samples written here, so their shapes are the analyzers' own.

Timeline (seconds from ``T0``): baseline [0, 10), fault [10, 20) with the fault injected at 10
and reverted at 12, recovery [20, 30), after [30, 40). Requests at 50/s; availability probes
every 100 ms; the service fails from the fault for ``outage_s`` seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.clock import Clock, to_iso
from drillbit.core.events import EventLog
from drillbit.core.results import (
    JOURNAL,
    AuditFields,
    Fault,
    FileRef,
    Measurements,
    Outcome,
    RunInfo,
    RunStatus,
    Verdict,
    VerdictSet,
    exit_code_for,
    write_model,
)
from drillbit.core.rundir import (
    AVAILABILITY,
    AVAILABILITY_SCHEMA,
    EVENTS,
    HEARTBEAT,
    HEARTBEAT_READBACK,
    HEARTBEAT_READBACK_SCHEMA,
    HEARTBEAT_SCHEMA,
    LOAD_META,
    REPLICAS,
    REPLICAS_SCHEMA,
    REQUEST_SCHEMA,
    REQUESTS_DIR,
)
from drillbit.probes.availability import analyze_rto, load_availability
from drillbit.probes.latency import analyze_run
from drillbit.probes.rpo import analyze_rpo, load_heartbeats
from drillbit.probes.samplers import ParquetSink, write_meta

__all__ = ["T0", "XSS", "Kind", "RunSpec", "write_requests", "write_run_dir"]

Kind = Literal["pass", "fail", "inconclusive", "interrupted", "observe"]
T0 = 1_760_000_000.0
FAULT_AT = T0 + 10.0
REVERT_AT = T0 + 12.0
END = T0 + 40.0
XSS = "<script>alert('xss')</script>"
PHASES = {"baseline": (T0, T0 + 10), "fault": (T0 + 10, T0 + 20), "recovery": (T0 + 20, T0 + 30),
          "after": (T0 + 30, END)}  # fmt: skip


@dataclass
class RunSpec:
    kind: Kind = "pass"
    run_id: str = "20251009T084640Z-pod-kill"
    started_at: float = T0
    canary: str | None = None  # a secret value planted in the journal, events and run.json target
    xss: bool = False  # plant <script> payloads in error messages, response bodies, marks
    outage_s: float = 2.0
    rate: float = 50.0
    slowdown: float = 1.0  # multiplies every request's latency
    declare_secret: bool = True  # the canary is declared in the experiment's secrets block (else only planted)
    audit: AuditFields = field(default_factory=AuditFields)


def write_requests(run_dir: Path, n: int, *, rate: float, start: float, fail: tuple[float, float] | None = None,
                   per_file: int = 1_000_000, seed: int = 7, slowdown: float = 1.0) -> None:  # fmt: skip
    """``n`` open-model request records at ``rate``/s from ``start``; requests intended within ``fail`` get 503."""
    rng = np.random.default_rng(seed)
    out = run_dir / REQUESTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    names = pa.array(["POST /orders", "GET /book/{symbol}"])
    kinds = pa.array(["http", "timeout"])
    for w, lo in enumerate(range(0, n, per_file)):
        k = min(per_file, n - lo)
        intended = start + (lo + np.arange(k)) / rate
        failing = (intended >= fail[0]) & (intended < fail[1]) if fail else np.zeros(k, dtype=bool)
        err = np.where(failing, 0, -1).astype(np.int32)
        table = pa.table(
            {
                "name": pa.DictionaryArray.from_arrays(rng.integers(0, 2, k).astype(np.int32), names),
                "intended": intended,
                "start": intended + rng.exponential(0.0003, k),
                "latency": rng.lognormal(-4.6, 0.4, k) * slowdown,
                "status": np.where(failing, 503, 200).astype(np.int16),
                "error": pa.DictionaryArray.from_arrays(pa.array(err, mask=err < 0), kinds),
                "worker": np.full(k, w, dtype=np.int16),
            },
            schema=REQUEST_SCHEMA,
        )
        pq.write_table(table, out / f"worker-{w}.parquet", row_group_size=100_000)


def _availability(run_dir: Path, outage: tuple[float, float], *, close: bool = True) -> None:
    sink = ParquetSink(run_dir / AVAILABILITY, AVAILABILITY_SCHEMA)
    for t in np.arange(T0, END, 0.1):
        bad = outage[0] <= t < outage[1]
        sink.add({"t": float(t), "ok": not bad, "latency": math.nan if bad else 0.004, "status": 0 if bad else 200,
                  "error": "connection" if bad else None})  # fmt: skip
    if close:
        sink.close()
    else:
        sink.flush()  # an interrupted drill leaves the journal, never the Parquet file
    write_meta(run_dir / AVAILABILITY, {"sampler": "availability", "interval_s": 0.1, "timeout_s": 1.0})


def _replicas(run_dir: Path, killed: bool) -> None:
    sink = ParquetSink(run_dir / REPLICAS, REPLICAS_SCHEMA)
    for t in np.arange(T0, END, 1.0):
        for region in ("region-a", "region-b"):
            ready = 1 if killed and region == "region-a" and FAULT_AT <= t < FAULT_AT + 3 else 2
            sink.add({"t": float(t), "region": region, "desired": 2, "ready": ready})
    sink.close()
    write_meta(run_dir / REPLICAS, {"sampler": "replicas", "interval_s": 1.0})


def _heartbeats(run_dir: Path, lost: int) -> None:
    sink = ParquetSink(run_dir / HEARTBEAT, HEARTBEAT_SCHEMA)
    seqs = range(1, 401)
    for seq in seqs:
        sent = T0 + seq * 0.1
        sink.add({"seq": seq, "sent": sent, "acked": sent + 0.002, "outcome": "acked", "error": None})
    sink.close()
    survivors = [s for s in seqs if not (95 <= s < 95 + lost)]
    pq.write_table(pa.Table.from_pylist([{"seq": s, "count": 1} for s in survivors], schema=HEARTBEAT_READBACK_SCHEMA),
                   run_dir / HEARTBEAT_READBACK)  # fmt: skip
    write_meta(run_dir / HEARTBEAT, {"sampler": "heartbeat", "interval_s": 0.1, "timeout_s": 1.0})


def _journal(spec: RunSpec) -> dict[str, Any]:
    body = f"upstream said {XSS}" if spec.xss else "ok"
    secret_output = f"connected with token {spec.canary}" if spec.canary else "connected"
    activity = {"type": "action", "name": "kill-one-replica",
                "provider": {"type": "python", "module": "drillbit.actions", "func": "kill_replicas",
                             "arguments": {"count": 1}}}  # fmt: skip
    probe = {"type": "probe", "name": "front-door-ready", "tolerance": True,
             "provider": {"type": "http", "url": "http://127.0.0.1:8080/readyz"}}  # fmt: skip
    run_status = "failed" if spec.kind == "inconclusive" else "succeeded"
    entry: dict[str, Any] = {"activity": activity, "status": run_status, "start": to_iso(FAULT_AT),
                             "end": to_iso(FAULT_AT + 0.05), "duration": 0.05,
                             "output": {"killed": [4242]}}  # fmt: skip
    if spec.kind == "inconclusive":
        entry["exception"] = ["Traceback ...", f"drillbit.core.errors.EnvironmentFailure: no replica to kill: {body}\n"]
    return {
        "chaoslib-version": "1.44.0",
        "experiment": {"title": f"An API replica is killed {XSS if spec.xss else ''}".strip(),
                       "secrets": {"api": {"token": spec.canary}} if spec.canary and spec.declare_secret else {}},
        "status": "interrupted" if spec.kind == "interrupted" else "completed",
        "deviated": spec.kind == "fail",
        "start": to_iso(T0), "end": to_iso(END), "duration": END - T0,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": [{"activity": probe, "status": "succeeded",
                       "output": {"status": 200, "body": body}, "tolerance_met": True, "start": to_iso(T0),
                       "end": to_iso(T0 + 0.01), "duration": 0.01}]},
            "after": None if spec.kind == "interrupted" else {"steady_state_met": spec.kind != "fail", "probes": [
                {"activity": probe, "status": "succeeded", "output": {"status": 503 if spec.kind == "fail" else 200,
                 "body": secret_output}, "tolerance_met": spec.kind != "fail"}]},
            "during": [],
        },
        "run": [entry],
        "rollbacks": [{"activity": {"type": "action", "name": "restore", "provider": {"type": "process",
                       "path": "true"}}, "status": "succeeded", "output": None, "duration": 0.001}],
    }  # fmt: skip


def write_run_dir(parent: Path, spec: RunSpec | None = None) -> Path:
    """A run directory under ``parent`` for ``spec`` (see the module docstring); returns its path."""
    spec = spec or RunSpec()
    d = parent / spec.run_id
    d.mkdir(parents=True)
    observe = spec.kind == "observe"
    landed = spec.kind != "inconclusive"
    outage_len = {"fail": 18.0, "inconclusive": 0.0}.get(spec.kind, spec.outage_s)
    outage = (FAULT_AT, FAULT_AT + outage_len)
    shift = spec.started_at - T0
    target = {"name": "sandbox", "kind": "sandbox", "fingerprint": "sbx-3f2a9c"}
    if spec.canary:
        target["dsn"] = f"postgresql://app:{spec.canary}@127.0.0.1:5432/trading"
    run = RunInfo(
        id=spec.run_id, mode="observe" if observe else "run",
        experiment=FileRef(path="experiments/pod-kill.yaml", sha256="ab" * 32),
        experiment_title="An API replica is killed and the service keeps serving", target=target, profile="steady",
        sla=FileRef(path="experiments/sla.yaml", sha256="cd" * 32), git_commit="918c713", git_dirty=False,
        manifests=[FileRef(path="infra/k8s/base/deployment.yaml", sha256="ef" * 32)], operator="alice",
        audit=spec.audit, versions={"drillbit": "0.1.0", "python": "3.11.9", "chaostoolkit-lib": "1.44.0"},
        host="ci-runner-1", pid=4242, started_at=spec.started_at,
        ended_at=None if spec.kind == "interrupted" else spec.started_at + 41.0,
        status=RunStatus.INTERRUPTED if spec.kind == "interrupted" else RunStatus.COMPLETED,
    )  # fmt: skip
    write_model(d / "run.json", run)
    write_requests(d, int((END - T0) * spec.rate), rate=spec.rate, start=T0, fail=outage if outage_len else None,
                   slowdown=spec.slowdown)
    _availability(d, outage, close=spec.kind != "interrupted")
    _replicas(d, killed=landed)
    _heartbeats(d, lost=3 if spec.kind == "fail" else 0)
    with EventLog(d / EVENTS, Clock()) as log:
        for name, (a, _) in PHASES.items():
            log.emit("phase", t=a, name=name)
        if not observe:
            extra = {"dsn": target["dsn"]} if spec.canary else {}
            error = {"error": f"no replica: {XSS}"} if spec.xss and not landed else {}
            log.emit("fault.inject", t=FAULT_AT, activity="kill-one-replica", action="drillbit.actions.kill_replicas",
                     landed=landed, **extra, **error)  # fmt: skip
            log.emit("fault.revert", t=REVERT_AT, activity="kill-one-replica")
        log.emit("mark", t=FAULT_AT + 5, name=XSS if spec.xss else "operator note: failover observed")
    (d / JOURNAL).write_text(json.dumps(_journal(spec), indent=1))
    if spec.kind != "interrupted":
        (d / LOAD_META).write_text(json.dumps({
            "profile": "steady", "model": "open", "locustfile": "trader.py", "host": "http://127.0.0.1:8080",
            "processes": 1, "started_at": T0, "ended_at": END, "duration_s": END - T0, "due": 2000,
            "expected": 2000.0, "sent": 2000, "recorded": 2000, "not_sent": 0, "abandoned": 0, "capped": 0,
            "cap_wait_s": 0.0, "intended_rps": spec.rate, "achieved_rps": spec.rate, "send_lateness_p50_ms": 0.2,
            "send_lateness_p99_ms": 0.9, "generator_lateness_p50_ms": 0.1, "generator_lateness_p99_ms": 0.5,
            "generator_lateness_max_ms": 2.0, "cpu_samples": {}, "cpu_percent_busiest": 21.0,
            "busy_percent_busiest": 23.0, "saturated": False, "reason": None, "reasons": [], "complete": True,
            "notes": [], "exit_code": 0}))  # fmt: skip
        _measure_and_judge(d, spec, landed, observe)
    if shift:
        _shift_times(d, shift)
    return d


def _measure_and_judge(d: Path, spec: RunSpec, landed: bool, observe: bool) -> None:
    rto = analyze_rto(load_availability(d), FAULT_AT, timeout=1.0, interval=0.1).to_dict()
    rpo = analyze_rpo(*load_heartbeats(d), FAULT_AT).to_dict()
    latency = analyze_run(d, dict(PHASES)).to_dict()
    faults = [] if observe else [Fault(activity="kill-one-replica", action="drillbit.actions.kill_replicas",
                                       injected_at=FAULT_AT, reverted_at=REVERT_AT, landed=landed,
                                       detail={"pids": [4242]},
                                       error=None if landed else f"no replica {XSS}")]  # fmt: skip
    write_model(d / "measurements.json", Measurements(
        fault_at=FAULT_AT, fault_source="marked" if observe else "injected", faults=faults, phases=PHASES,
        rto=rto, rpo=rpo, latency=latency, availability={"percent": 95.0, "probes": 400, "failed": 20,
        "interval_s": 0.1, "phases": {"fault": {"probes": 100, "failed": 20, "percent": 80.0}}},
        replicas={"restored_s": 3.0, "dipped": True, "restored_at": FAULT_AT + 3, "interval_s": 1.0},
        load=json.loads((d / LOAD_META).read_text()),
        experiment={"status": "completed"}))  # fmt: skip
    p95 = latency["phases"]["all"]["p95_ms"]
    xss = f" {XSS}" if spec.xss else ""
    if spec.kind == "inconclusive":
        verdicts = [Verdict(sla="rto", requirement="R9.4", requirement_text="RTO < 15 min", metric="rto_s", op="<",
                            target=900, unit="s", measured=None, verdict=Outcome.INCONCLUSIVE,
                            how="availability probe every 100 ms", reason="the fault did not land")]  # fmt: skip
        reasons = ["fault kill-one-replica did not land: no replica to kill" + (f" {XSS}" if spec.xss else "")]
    else:
        rto_ok = rto["rto_s"] is not None and rto["rto_s"] < 15
        verdicts = [
            Verdict(sla="rto", requirement="R9.4", requirement_text="RTO < 15 min", metric="rto_s", op="<", target=15,
                    unit="s", measured=rto["rto_s"], verdict=Outcome.PASS if rto_ok else Outcome.FAIL,
                    how=f"availability probe every 100 ms, ± {rto['error_bound_s']:.3f} s",
                    reason=None if rto_ok else f"recovery took longer than the target{xss}"),
            Verdict(sla="rpo", requirement="R9.4", requirement_text="RPO < 1 min (no acknowledged write lost)",
                    metric="rpo_lost", op="==", target=0, unit="count", measured=rpo["lost"],
                    verdict=Outcome.PASS if rpo["lost"] == 0 else Outcome.FAIL, how="heartbeat every 100 ms"),
            Verdict(sla="latency_p95", requirement="R2.1", requirement_text="p95 latency < 50 ms", metric="p95_ms",
                    op="<", target=50, unit="ms", measured=p95, verdict=Outcome.PASS,
                    how="corrected for coordinated omission, HdrHistogram 3 digits"),
        ]  # fmt: skip
        reasons = []
    outcomes = {v.verdict for v in verdicts}
    outcome = Outcome.FAIL if Outcome.FAIL in outcomes else (
        Outcome.INCONCLUSIVE if Outcome.INCONCLUSIVE in outcomes else Outcome.PASS)  # fmt: skip
    write_model(d / "verdicts.json", VerdictSet(outcome=outcome, exit_code=exit_code_for(outcome), verdicts=verdicts,
                                                inconclusive_reasons=reasons))  # fmt: skip
    run = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else None
    if run is not None:
        run.update(outcome=outcome.value, exit_code=exit_code_for(outcome))
        (d / "run.json").write_text(json.dumps(run))


def _shift_times(d: Path, shift: float) -> None:
    """Move run.json's start/end by ``shift`` seconds (drills on other days, for trends and chains)."""
    run = json.loads((d / "run.json").read_text())
    run["started_at"] += shift
    if run.get("ended_at") is not None:
        run["ended_at"] += shift
    (d / "run.json").write_text(json.dumps(run))
