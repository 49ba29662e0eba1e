"""Whole drills (``drill run``) on the real sandbox: faults injected under load, measured, judged.

The shipped experiments run with shorter baseline and cool-down windows (3 s) to keep the suite
fast; everything else is as shipped. Each test leaves the sandbox whole (the runner heals it, and
the next drill checks). Ground truth: what the target itself says (pids, primary, the database's
rows), read independently of the analyzers.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drillbit.analysis import analyze
from drillbit.core.events import read_events
from drillbit.core.results import MEASUREMENTS, RUN, VERDICTS, Measurements, Outcome, RunInfo, RunStatus, read_model
from drillbit.manifests import render
from drillbit.plan import DrillPlan, load_plan
from drillbit.probes.alerts import ALERTS_META
from drillbit.probes.promql import query_range_figures
from drillbit.runner import DrillResult, RunOptions, run_drill
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox
from drillbit.verdicts import evaluate
from tests.atrest import scale_back
from tests.e2e.outcomes import passed_or_saturated
from tests.e2e.rpo_truth import lost_by_the_database
from tests.grafana_fake import recording_grafana

pytestmark = pytest.mark.slow

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _plan(name: str, **settings: Any) -> DrillPlan:
    plan = load_plan(EXPERIMENTS / f"{name}.yaml")
    update = {"baseline_s": 3.0, "cooldown_s": 3.0, **settings}
    return dataclasses.replace(plan, settings=plan.settings.model_copy(update=update))


def _with_arguments(plan: DrillPlan, step: int, **arguments: Any) -> DrillPlan:
    """The plan with the ``step``-th method activity's provider arguments changed."""
    exp = json.loads(json.dumps(plan.experiment))
    exp["method"][step]["provider"]["arguments"] = {**exp["method"][step]["provider"].get("arguments", {}), **arguments}
    return dataclasses.replace(plan, experiment=exp)


def _drill(sandbox: Sandbox, plan: DrillPlan, out: Path) -> DrillResult:
    options = RunOptions(state_dir=sandbox.layout.state_dir, out=out, tty=False, say=print)
    result = run_drill(plan, options)
    print(f"{plan.name}: exit {result.exit_code}, {json.dumps([v.model_dump(mode='json') for v in result.verdicts.verdicts] if result.verdicts else None)[:2000]}")  # noqa: E501
    return result


def _measurements(result: DrillResult) -> Measurements:
    return read_model(result.run_dir / MEASUREMENTS, Measurements)


def _verdict(result: DrillResult, sla: str) -> Any:
    assert result.verdicts is not None
    return next(v for v in result.verdicts.verdicts if v.sla == sla)


def _market_data_and_every_record(result: DrillResult) -> None:
    passed = passed_or_saturated(result)
    m = _measurements(result)
    md = m.marketdata
    assert md is not None and md.reader_died is None and md.streams >= 1, m.unmeasured
    for phase in ("baseline", "fault", "recovery", "after"):
        figures = md.phases[phase]
        assert figures.trades >= 5 and figures.lost == 0 and figures.unseen == 0 and figures.duplicates == 0, figures
    assert md.phases["baseline"].p95_ms is not None and md.phases["baseline"].p95_ms < 50, md.phases["baseline"]
    if passed:
        assert _verdict(result, "marketdata_latency").verdict is Outcome.PASS
    assert _verdict(result, "marketdata_lost").verdict is Outcome.PASS
    load = json.loads((result.run_dir / "load.json").read_text())
    assert load["processes"] == 2 and load["complete"] and load["locustfile"].endswith("marketdata.py"), load
    assert load["recorded"] == load["sent"] + load["not_sent"] and load["sent"] > 500, load
    schedules = sorted(p.name for p in (result.run_dir / "requests").glob("worker-*.json"))
    assert schedules == ["worker-0.json", "worker-1.json"], schedules
    assert "id=\"marketdata\"" in (result.run_dir / "report.html").read_text()


def _assert_whole(sandbox: Sandbox) -> None:
    assert SandboxTarget(sandbox).whole(), sandbox.status()


def test_pod_kill_drill_passes_with_faults_landed_and_an_rto_of_seconds(
    sandbox_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``drill run experiments/pod-kill.yaml --workers 2 --locustfile marketdata`` (the trader's pod-kill runs in
    test_wheel, test_pytest_plugin and test_terraform_env).

    Also: drill.yaml's grafana: posts the drill's phases and faults as annotations (a recording
    stand-in for Grafana), with the token from the variable it names; the market-data SLAs join the set
    (order execution leaves it: the readers place no order), the probe's trades are timed from their
    acknowledgement to the stream in every phase, none lost; both generator processes' records are all
    there: each process's schedule record, and one request record per request due."""
    plan = load_plan(EXPERIMENTS / "pod-kill.yaml", workers=2, locustfile="marketdata")
    plan = dataclasses.replace(plan, settings=plan.settings.model_copy(update={"baseline_s": 3.0, "cooldown_s": 3.0}))
    assert {"marketdata_latency", "marketdata_lost"} <= set(plan.slas) and "order_execution" not in plan.slas
    with recording_grafana() as grafana:
        config = tmp_path / "drill.yaml"
        config.write_text(yaml.safe_dump({"targets": {}, "grafana": {"url": grafana.url, "token_env": "GRAFANA_T"}}))
        monkeypatch.setenv("DRILL_CONFIG", str(config))
        monkeypatch.setenv("GRAFANA_T", "glsa_canary-token-4d2f")
        result = _drill(sandbox_env, plan, tmp_path / "runs")
    _market_data_and_every_record(result)
    tags = [r["body"]["tags"] for r in grafana.requests]
    assert {"baseline", "fault", "recovery"} <= {t[-1] for t in tags if "phase" in t}, tags
    assert sum(t[-2] == "fault" for t in tags) == 2, tags  # one region per kill (tags: ..., "fault", action)
    assert all(r["headers"]["Authorization"] == "Bearer glsa_canary-token-4d2f" for r in grafana.requests)
    posted = [e for e in read_events(result.run_dir / "events.jsonl") if e["kind"] == "grafana.annotations"]
    assert [(e["posted"], e["errors"]) for e in posted] == [(len(grafana.requests), [])], posted
    assert not any("canary-token" in p.read_text(errors="replace") for p in result.run_dir.rglob("*") if p.is_file())
    m = _measurements(result)
    passed_or_saturated(result)
    assert [f.landed for f in m.faults] == [True, True]
    assert len(m.faults[1].detail["killed"]) == 2  # 50 % of 4 replicas
    # the RTO holds its SLA (the verdict), lies within its bounds and carries its error bound (a
    # probe interval); it runs from the first kill to the last recovery, and each kill has its own
    assert m.rto is not None and m.rto.recovered and m.rto.rto_s is not None, m.rto
    assert m.rto.interval_s <= 0.2, m.rto
    if m.rto.failed_probes == 0:  # nothing failed: an outage shorter than one interval could hide between probes
        assert m.rto.error_bound_s == pytest.approx(m.rto.interval_s), m.rto
    else:  # a probe in flight on a killed replica failed: half the gap around recovery plus one round trip
        assert m.rto.rto_upper_s is not None
        half_gap = (m.rto.rto_upper_s - m.rto.rto_lower_s) / 2
        assert half_gap <= m.rto.error_bound_s <= half_gap + m.rto.timeout_s, m.rto
    assert m.rto.rto_lower_s <= m.rto.rto_s <= m.rto.rto_upper_s, m.rto
    assert _verdict(result, "rto").measured == pytest.approx(m.rto.rto_s)
    per_fault = m.rto.per_fault
    assert [f.fault_id for f in per_fault] == [f.id for f in m.faults], per_fault
    assert all(f.rto_s is not None and f.rto_s <= m.rto.rto_s + 1e-9 for f in per_fault), per_fault
    assert m.replicas is not None and m.replicas.restored_s < 30
    info = read_model(result.run_dir / RUN, RunInfo)
    assert info.status is RunStatus.COMPLETED and info.exit_code == 0
    assert info.experiment is not None and info.experiment.path.endswith("pod-kill.yaml")
    # the manifests the sandbox stands in for (topology.yaml: manifests) are recorded and reported
    staged = render(EXPERIMENTS.parent / "infra" / "k8s" / "overlays" / "staging")
    assert info.manifests_check is not None and info.manifests_check.rendered_sha256 == staged.rendered_sha256
    assert info.manifests_check.counts["error"] == 0, info.manifests_check
    recorded = {Path(f.path).resolve(): f.sha256 for f in info.manifests}
    assert all(recorded.get(Path(s.path).resolve()) == s.sha256 for s in staged.sources), recorded
    assert staged.rendered_sha256 in (result.run_dir / "report.html").read_text()
    for name in ("events.jsonl", "journal.json", VERDICTS, "load.json", "samples/availability.parquet"):
        assert (result.run_dir / name).exists(), name
    _assert_whole(sandbox_env)


def _primary_in(sandbox: Sandbox, region: str) -> None:
    """Move the primary to ``region`` (a planned switchover) and let the alerts it raised resolve."""
    if sandbox.primary() != region:
        sandbox.failover_db("switchover")
        assert sandbox.primary() == region, sandbox.status()
        time.sleep(3)  # a switchover is shorter than any alert's for: nothing fires, nothing pending stays


def _fired_per_prometheus(sandbox: Sandbox, name: str, start: float) -> float | None:
    """Ground truth read from Prometheus itself (not drillbit's receiver): the first time since ``start``
    its ALERTS series says ``name`` is firing (1 s resolution)."""
    urls = sandbox.monitoring_urls()
    assert urls is not None, "the session's sandbox runs with monitoring"
    query = f'ALERTS{{alertname="{name}", alertstate="firing"}}'
    got = httpx.get(f"{urls['prometheus']}/api/v1/query_range", params={"query": query, "start": start,
                    "end": time.time(), "step": 1}, timeout=5, trust_env=False).json()  # fmt: skip
    times = [float(t) for series in got["data"]["result"] for t, _ in series["values"]]
    return min(times) if times else None


def test_region_loss_drill_measures_failover_rto_rpo_and_alert_latency_that_hold_against_ground_truth(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    """Losing the primary's region: the RTO is about one Patroni leader lease; RPO holds against the
    database; ApiDown and DbPrimaryMissing fire, and their latencies hold against the chain's own
    bounds: DbPrimaryMissing's condition (no member is primary) starts at the kill itself, so it fires
    after its for (10 s) plus at most a scrape and an evaluation, and notifies group_wait (5 s) later."""
    _primary_in(sandbox_env, "region-a")
    plan = _plan("region-loss")
    result = _drill(sandbox_env, plan, tmp_path / "runs")
    m = _measurements(result)
    assert m.faults[0].landed and m.faults[0].detail["primary_lost"] is True, m.faults
    assert m.rto is not None and m.rto.recovered and 10 < m.rto.rto_s < 60, m.rto
    assert m.rpo is not None
    assert m.rpo.lost_seqs == lost_by_the_database(result, sandbox_env.dsn)
    assert _verdict(result, "region_failover").measured == pytest.approx(m.rto.rto_s)
    a = m.alerts
    assert a is not None, m.unmeasured
    assert a.expected == ["ApiDown", "DbPrimaryMissing"] and a.missing == [] and a.firing_before_fault == [], a
    chain = a.chain
    assert (chain.scrape_interval_s, chain.evaluation_interval_s, chain.group_wait_by_severity["critical"]) == (
        1.0, 1.0, 5.0), chain  # fmt: skip
    assert chain.for_s["DbPrimaryMissing"] == 10.0 and chain.for_s["ApiDown"] == 10.0, chain
    db = next(r for r in a.alerts if r.name == "DbPrimaryMissing")
    slack = chain.scrape_interval_s + chain.evaluation_interval_s + 1.0
    assert db.fired_s is not None and 10.0 <= db.fired_s <= 10.0 + slack, db
    # Alertmanager holds it group_wait (5 s) in a new group, or until the group's next group_interval
    # tick (10 s) when an earlier drill's group still exists
    assert chain.group_interval_by_severity["critical"] == 10.0, chain
    assert db.notified_s is not None and db.fired_s <= db.notified_s <= db.fired_s + 10.0 + 1.0, db
    api = next(r for r in a.alerts if r.name == "ApiDown")
    assert api.notified_s is not None and api.fired_s is not None and 10.0 <= api.fired_s <= api.notified_s < 30, api
    assert a.latency_s == max(db.notified_s, api.notified_s)
    for r in (db, api):  # Prometheus's own record of when each fired is the one drillbit measured
        truth = _fired_per_prometheus(sandbox_env, r.name, m.fault_at)
        assert truth is not None and r.fired_at is not None and abs(truth - r.fired_at) <= 1.0, (truth, r)
    # what Prometheus scraped through the sandbox exporter saw the region go and come back
    urls = sandbox_env.monitoring_urls()
    assert urls is not None
    seen = query_range_figures('drillbit_sandbox_replicas_available{region="region-a"}', m.fault_at, time.time(),
                               step=1, prometheus_url=urls["prometheus"])["series"]  # fmt: skip
    assert len(seen) == 1 and seen[0]["min"] == 0.0 and seen[0]["last"] >= 2.0, seen
    # the platform's own 5xx ratio (PromQL, from its Prometheus) saw the failures drillbit counted
    assert m.promql is not None and m.latency is not None, m.unmeasured
    ratio = m.promql.figures["error_ratio_1m"]
    assert ratio.measured and ratio.max is not None and ratio.max > 0 and m.latency.phases["fault"].errors > 0, ratio
    assert "error_ratio_1m" in (result.run_dir / "report.html").read_text()
    for sla in ("alert_latency", "alert_expected_fired", "no_unexpected_critical"):
        assert _verdict(result, sla).verdict is Outcome.PASS, _verdict(result, sla)
    assert "DbPrimaryMissing" in (result.run_dir / "report.html").read_text()
    passed_or_saturated(result)
    _assert_whole(sandbox_env)
    scale_back(sandbox_env)  # the surviving region scaled out under the whole load: the next drill starts at rest
    # the same notifications, had the experiment expected an alert the rules do not have: FAIL
    misnamed = tmp_path / "misnamed"
    shutil.copytree(result.run_dir, misnamed)
    meta = json.loads((misnamed / ALERTS_META).read_text())
    meta["expect"] = [{**e, "alert": "DbPrimaryMisnamed"} if e["alert"] == "DbPrimaryMissing" else e
                      for e in meta["expect"]]  # fmt: skip
    (misnamed / ALERTS_META).write_text(json.dumps(meta))
    verdicts = {v.sla: v for v in evaluate(analyze(misnamed, plan.slas, convert_journals=False), plan.slas).verdicts}
    assert verdicts["alert_expected_fired"].verdict is Outcome.FAIL and verdicts["alert_expected_fired"].measured == 1
    assert "DbPrimaryMisnamed never fired" in (verdicts["alert_latency"].reason or "")


def test_a_fault_that_cannot_land_makes_the_drill_inconclusive_exit_3(sandbox_env: Sandbox, tmp_path: Path) -> None:
    plan = _with_arguments(_plan("pod-kill", max_recovery_s=10, baseline_s=2.0, cooldown_s=2.0), 0, count=99)
    first = {k: v for k, v in plan.experiment["method"][0].items() if k != "pauses"}  # nothing landed to wait on
    exp = {**plan.experiment, "method": [first]}  # more replicas than there are
    plan = dataclasses.replace(plan, experiment=exp, faults=[exp["method"][0]["name"]])
    result = _drill(sandbox_env, plan, tmp_path)
    assert result.exit_code == 3
    assert result.verdicts is not None and result.verdicts.outcome is Outcome.INCONCLUSIVE
    assert any("did not land" in r and "cannot kill 99" in r for r in result.verdicts.inconclusive_reasons)
    assert all(v.verdict is not Outcome.PASS for v in result.verdicts.verdicts)


def test_load_spike_drill_scales_out_and_reports_the_reaction_time(sandbox_env: Sandbox, tmp_path: Path) -> None:
    decisions = sandbox_env.layout.logs / "autoscaler.jsonl"
    seen = len(decisions.read_text().splitlines()) if decisions.exists() else 0
    try:
        # a 20 s spike rather than the shipped 60 s: the first new replica comes within seconds
        result = _drill(sandbox_env, _with_arguments(_plan("load-spike"), 0, duration=20), tmp_path)
        m = _measurements(result)
        assert m.faults[0].landed, m.faults
        assert m.autoscaling is not None, m.unmeasured
        step = m.autoscaling.load_step_at
        first_new = m.autoscaling.first_new_ready_s
        assert first_new is not None and first_new < 30, m.autoscaling
        # ground truth: the autoscaler's own decision log; a new replica is ready after it decided
        ups = [json.loads(line) for line in decisions.read_text().splitlines()[seen:]]
        ups = [d for d in ups if d["to"] > d["from"]]
        assert ups, "the autoscaler never scaled out"
        decided = min(d["t"] for d in ups) - step
        assert decided - 0.5 <= first_new <= decided + 15, (decided, first_new)
        assert _verdict(result, "scale_out").verdict is Outcome.PASS
    finally:
        scale_back(sandbox_env)
