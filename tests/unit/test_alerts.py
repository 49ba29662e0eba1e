"""Alert latency: the webhook receiver over real HTTP, the analyzer against scripted notifications of
known times, the verdicts (a missing alert FAILs; no monitoring is INCONCLUSIVE, never PASS), and the
sandbox's rendered monitoring configuration checked by the real promtool and amtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drillbit.core.clock import Clock
from drillbit.core.events import read_events
from drillbit.core.measurements import AlertChain
from drillbit.core.results import Measurements, Outcome
from drillbit.probes.alerts import ALERTS_META, AlertReceiver, analyze_alerts, parse_duration
from drillbit.sla import load_sla_file, slas_for
from drillbit.targets.sandbox.layout import Layout
from drillbit.targets.sandbox.monitoring import alertmanager_config, monitoring_sources, prometheus_config
from drillbit.targets.sandbox.topology import default_topology, load_topology
from drillbit.verdicts import evaluate

ALERT_SLAS = {k: v for k, v in slas_for(load_sla_file(), "region-loss").items()
              if k in ("alert_latency", "alert_expected_fired", "no_unexpected_critical")}  # fmt: skip
FAULT = 1000.0
CHAIN = {"scrape_interval_s": 1.0, "evaluation_interval_s": 1.0, "group_wait_s": 5.0,
         "group_wait_by_severity": {"critical": 5.0, "warning": 30.0}, "for_s": {"ApiDown": 10.0}}  # fmt: skip


def _payload(*alerts: tuple[str, str, str, str | None]) -> dict[str, Any]:
    """An Alertmanager 0.25 webhook body: (name, status, startsAt, endsAt) per alert."""
    return {"version": "4", "status": alerts[0][1], "receiver": "page", "groupKey": "{}:{alertname=\"x\"}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": status, "labels": {"alertname": name, "severity": "critical"},
                        "annotations": {"summary": "s"}, "startsAt": starts,
                        "endsAt": ends or "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "f" + name}
                       for name, status, starts, ends in alerts]}  # fmt: skip


def test_the_receiver_records_each_alert_of_a_real_webhook_post_with_its_arrival_and_prometheus_times(
    tmp_path: Path,
) -> None:
    receiver = AlertReceiver("127.0.0.1:0", tmp_path, Clock(), expect=[{"alert": "ApiDown", "when": None}]).start()
    try:
        url = f"http://127.0.0.1:{receiver.address[1]}/alerts"
        body = _payload(("ApiDown", "firing", "2026-12-02T17:10:38.123456789Z", None),
                        ("DbPrimaryMissing", "firing", "2026-12-02T17:10:39Z", None))  # fmt: skip
        assert httpx.post(url, json=body, timeout=5, trust_env=False).status_code == 200
        assert httpx.post(url, content=b"{not json", timeout=5, trust_env=False).status_code == 400
    finally:
        receiver.stop()
    events = [e for e in read_events(tmp_path / "events.jsonl") if e["kind"] == "alert"]
    assert [(e["name"], e["status"], e["severity"]) for e in events] == [
        ("ApiDown", "firing", "critical"), ("DbPrimaryMissing", "firing", "critical")]  # fmt: skip
    assert events[0]["starts_at"] == pytest.approx(1796231438.123456) and events[0]["ends_at"] is None
    meta = json.loads((tmp_path / ALERTS_META).read_text())
    assert (meta["listening"], meta["declared"], meta["notifications"], meta["refused"]) == (True, True, 1, 1)
    assert meta["chain"]["problems"], "no Prometheus or Alertmanager URL: the chain says it is unknown"


def test_a_receiver_that_cannot_listen_records_why_and_the_alerts_are_unmeasured(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    first = AlertReceiver("127.0.0.1:0", tmp_path / "a", Clock(), expect=[]).start()
    try:
        second = AlertReceiver(f"127.0.0.1:{first.address[1]}", tmp_path / "b", Clock(), expect=[]).start()
        second.stop()
    finally:
        first.stop()
    meta = json.loads((tmp_path / "b" / ALERTS_META).read_text())
    assert meta["listening"] is False and "cannot listen" in meta["error"]
    with pytest.raises(ValueError, match="did not listen"):
        analyze_alerts([], meta, fault_at=FAULT, recovered_at=None, fault_details=[])


def _event(t: float, name: str, status: str, starts: float | None, severity: str = "critical",
           ends: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {"t": t, "kind": "alert", "name": name, "status": status, "severity": severity, "labels": {},
            "starts_at": starts, "ends_at": ends}  # fmt: skip


def _meta(*expect: dict[str, Any]) -> dict[str, Any]:
    return {"listening": True, "declared": True, "expect": list(expect), "receiver": "127.0.0.1:1",
            "notifications": 3, "chain": CHAIN}  # fmt: skip


def test_latencies_are_the_scripted_times_from_the_fault_and_from_recovery() -> None:
    events = [_event(FAULT + 17.2, "ApiDown", "firing", FAULT + 11.0),
              _event(FAULT + 17.3, "ApiDown", "firing", FAULT + 11.0),  # a repeat: the first arrival counts
              _event(FAULT + 45.0, "ApiDown", "resolved", FAULT + 11.0, ends=FAULT + 36.0)]  # fmt: skip
    a = analyze_alerts(events, _meta({"alert": "ApiDown"}), fault_at=FAULT, recovered_at=FAULT + 30.0,
                       fault_details=[])  # fmt: skip
    (api,) = a.alerts
    got = (api.fired_s, api.notified_s, api.resolved_s, api.resolved_at)
    assert got == pytest.approx((11.0, 17.2, 15.0, FAULT + 36))
    assert a.latency_s == pytest.approx(17.2) and a.missing == [] and a.unexpected_critical == []


def test_an_expected_alert_that_never_fires_fails_and_one_that_breaches_30_s_fails() -> None:
    m = Measurements(fault_at=FAULT, alerts=analyze_alerts(
        [_event(FAULT + 41.0, "ApiDown", "firing", FAULT + 35.0)],
        _meta({"alert": "ApiDown"}, {"alert": "DbPrimaryMisnamed"}), fault_at=FAULT, recovered_at=None,
        fault_details=[]))  # fmt: skip
    verdicts = {v.sla: v for v in evaluate(m, ALERT_SLAS).verdicts}
    assert verdicts["alert_expected_fired"].verdict is Outcome.FAIL and verdicts["alert_expected_fired"].measured == 1
    latency = verdicts["alert_latency"]
    assert latency.verdict is Outcome.FAIL and "DbPrimaryMisnamed never fired" in (latency.reason or ""), latency
    assert "group_wait/group_interval" in latency.how and "at most 18 s" in latency.how, latency.how
    late = Measurements(fault_at=FAULT, alerts=analyze_alerts([_event(FAULT + 41.0, "ApiDown", "firing", FAULT + 35.0)],
                        _meta({"alert": "ApiDown"}), fault_at=FAULT, recovered_at=None, fault_details=[]))  # fmt: skip
    assert {v.sla: v.verdict for v in evaluate(late, ALERT_SLAS).verdicts}["alert_latency"] is Outcome.FAIL


def test_an_unexpected_critical_alert_fails_and_an_unexpected_warning_does_not() -> None:
    events = [_event(FAULT + 16.0, "ApiDown", "firing", FAULT + 10.5),
              _event(FAULT + 16.0, "ReplicationLagAboveRpo", "firing", FAULT + 10.5),
              _event(FAULT + 40.0, "ApiReplicasBelowMinimum", "firing", FAULT + 10.5, severity="warning")]  # fmt: skip
    m = Measurements(fault_at=FAULT, alerts=analyze_alerts(events, _meta({"alert": "ApiDown"}), fault_at=FAULT,
                                                           recovered_at=None, fault_details=[]))  # fmt: skip
    assert m.alerts is not None and m.alerts.unexpected_critical == ["ReplicationLagAboveRpo"]
    verdicts = {v.sla: v.verdict for v in evaluate(m, ALERT_SLAS).verdicts}
    assert verdicts == {"alert_latency": Outcome.PASS, "alert_expected_fired": Outcome.PASS,
                        "no_unexpected_critical": Outcome.FAIL}  # fmt: skip


def test_an_allowed_alert_is_neither_missing_nor_unexpected() -> None:
    meta = _meta({"alert": "ApiDown"}, {"alert": "ApiErrorBudgetBurn", "required": False},
                 {"alert": "ApiLatencyBudgetBurn", "required": False})  # fmt: skip
    events = [_event(FAULT + 16.0, "ApiDown", "firing", FAULT + 10.5),
              _event(FAULT + 8.0, "ApiErrorBudgetBurn", "firing", FAULT + 3.0)]  # fmt: skip
    a = analyze_alerts(events, meta, fault_at=FAULT, recovered_at=None, fault_details=[])
    assert (a.expected, a.allowed, a.missing, a.unexpected_critical) == (
        ["ApiDown"], ["ApiErrorBudgetBurn", "ApiLatencyBudgetBurn"], [], [])  # fmt: skip
    assert a.latency_s == pytest.approx(16.0)  # an allowed alert's latency is not the SLA's


def test_an_alert_firing_before_the_fault_makes_the_drill_inconclusive() -> None:
    events = [_event(FAULT - 3.0, "ApiDown", "firing", FAULT - 20.0), _event(FAULT + 16.0, "ApiDown", "firing",
                                                                              FAULT + 10.0)]  # fmt: skip
    m = Measurements(fault_at=FAULT, alerts=analyze_alerts(events, _meta({"alert": "ApiDown"}), fault_at=FAULT,
                                                           recovered_at=None, fault_details=[]))  # fmt: skip
    result = evaluate(m, ALERT_SLAS)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert any("already firing before the fault" in r for r in result.inconclusive_reasons)
    assert all(v.verdict is not Outcome.PASS for v in result.verdicts)


def test_an_alert_resolved_before_the_fault_is_no_doubt() -> None:
    events = [_event(FAULT - 8.0, "ApiDown", "firing", FAULT - 20.0),
              _event(FAULT - 2.0, "ApiDown", "resolved", FAULT - 20.0, ends=FAULT - 4.0)]  # fmt: skip
    a = analyze_alerts(events, _meta(), fault_at=FAULT, recovered_at=None, fault_details=[])
    assert a.firing_before_fault == []


def test_a_conditional_expectation_applies_only_when_a_fault_reported_its_fact() -> None:
    meta = {**_meta({"alert": "DbPrimaryMissing", "when": "primary_lost"}), "stopped_at": FAULT + 60.0}
    lost = analyze_alerts([], meta, fault_at=FAULT, recovered_at=None, fault_details=[{"primary_lost": True}])
    assert lost.expected == ["DbPrimaryMissing"] and lost.missing == ["DbPrimaryMissing"]
    kept = analyze_alerts([], meta, fault_at=FAULT, recovered_at=None, fault_details=[{"primary_lost": False}])
    assert kept.expected == [] and "primary_lost" in kept.not_expected["DbPrimaryMissing"]
    verdicts = {v.sla: v for v in evaluate(Measurements(fault_at=FAULT, alerts=kept), ALERT_SLAS).verdicts}
    assert verdicts["alert_latency"].verdict is Outcome.INCONCLUSIVE  # nothing to time: never a PASS
    assert verdicts["alert_expected_fired"].verdict is Outcome.PASS


def test_an_alert_timed_since_a_reported_condition_is_measured_from_it_not_from_the_fault() -> None:
    """The replication-lag drill: the lag passes the RPO 62 s after the link was slowed; the alert fires
    for 10 s later and is notified 15 s after the breach: 15 s of latency (77 s after the fault)."""
    meta = {**_meta({"alert": "ApiDown", "since": "lag_above_target_at"}), "stopped_at": FAULT + 120.0}
    events = [_event(FAULT + 77.0, "ApiDown", "firing", FAULT + 72.5)]
    a = analyze_alerts(events, meta, fault_at=FAULT, recovered_at=None,
                       fault_details=[{"landed": True}, {"lag_above_target_at": FAULT + 62.0}])  # fmt: skip
    (rec,) = a.alerts
    assert (rec.since, rec.fired_s, rec.notified_s, a.latency_s) == pytest.approx((FAULT + 62, 10.5, 15.0, 15.0))
    verdicts = {v.sla: v.verdict for v in evaluate(Measurements(fault_at=FAULT, alerts=a), ALERT_SLAS).verdicts}
    assert verdicts["alert_latency"] is Outcome.PASS
    # the same notification timed from the fault would be 77 s: a FAIL
    plain = analyze_alerts(events, _meta({"alert": "ApiDown"}), fault_at=FAULT, recovered_at=None, fault_details=[])
    assert plain.latency_s == pytest.approx(77.0)


def test_an_alert_timed_since_a_condition_no_fault_reported_is_not_expected_and_not_judged_late() -> None:
    meta = {**_meta({"alert": "ApiDown", "since": "lag_above_target_at"}), "stopped_at": FAULT + 300.0}
    a = analyze_alerts([], meta, fault_at=FAULT, recovered_at=None, fault_details=[{"lag_above_target_at": None}])
    assert a.expected == [] and a.missing == [] and "lag_above_target_at" in a.not_expected["ApiDown"]
    # reported 5 s before the drill stopped: not due yet (for 10 s + chain), so neither a miss nor a pass
    due = analyze_alerts([], {**meta, "stopped_at": FAULT + 65.0}, fault_at=FAULT, recovered_at=None,
                         fault_details=[{"lag_above_target_at": FAULT + 60.0}])  # fmt: skip
    assert (due.missing, due.not_yet) == ([], ["ApiDown"])


def test_a_drill_cut_short_before_an_alert_was_due_is_inconclusive_not_a_miss() -> None:
    """Killed 5 s after the fault: ApiDown (for 10 s) could not have fired yet; once the receiver
    listened longer than for + scrape + evaluation + group_wait + 1 s (18 s), silence is a miss."""
    early = analyze_alerts([], {**_meta({"alert": "ApiDown"}), "stopped_at": FAULT + 5.0}, fault_at=FAULT,
                           recovered_at=None, fault_details=[])  # fmt: skip
    assert (early.missing, early.not_yet, early.observed_s) == ([], ["ApiDown"], 5.0)
    result = evaluate(Measurements(fault_at=FAULT, alerts=early), ALERT_SLAS)
    assert {v.verdict for v in result.verdicts} == {Outcome.INCONCLUSIVE}, result.verdicts
    late = analyze_alerts([], {**_meta({"alert": "ApiDown"}), "stopped_at": FAULT + 18.5}, fault_at=FAULT,
                          recovered_at=None, fault_details=[])  # fmt: skip
    assert (late.missing, late.not_yet) == (["ApiDown"], [])


def test_without_monitoring_every_alert_sla_is_inconclusive_with_the_reason() -> None:
    why = "no Alertmanager was wired to the drill (on the sandbox: drill env up --with-monitoring, ...)"
    result = evaluate(Measurements(fault_at=FAULT, unmeasured={"alerts": why}), ALERT_SLAS)
    assert {v.verdict for v in result.verdicts} == {Outcome.INCONCLUSIVE}
    assert all(v.reason == why for v in result.verdicts)


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0)])
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_chain_without_urls_says_what_it_does_not_know() -> None:
    chain = AlertChain.model_validate({"problems": ["no Prometheus URL"]})
    assert chain.scrape_interval_s is None and chain.problems


def test_the_rendered_monitoring_passes_promtool_and_amtool_and_sends_every_webhook_to_the_receiver(
    tmp_path: Path,
) -> None:
    topo = load_topology()
    rules, am = monitoring_sources(topo, default_topology())
    assert {p.name for p in rules} == {"api.yml", "api-slo.yml", "database.yml"}
    text = prometheus_config(topo, exporter=19100, alertmanager=19093, restapi={"region-a": 18008, "region-b": 18009},
                             rule_files=rules)  # fmt: skip
    cfg = yaml.safe_load(text)
    assert {j["job_name"] for j in cfg["scrape_configs"]} == {"trading-api", "trading-api-probe", "patroni",
                                                             "drillbit-sandbox"}  # fmt: skip
    assert cfg["global"]["scrape_interval"] == "1000ms" and cfg["global"]["evaluation_interval"] == "1000ms"
    receiver = "http://127.0.0.1:19099/alerts"
    routed = alertmanager_config(am, receiver)
    hooks = [h["url"] for r in yaml.safe_load(routed)["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and set(hooks) == {receiver}
    (tmp_path / "prometheus.yml").write_text(text)
    (tmp_path / "alertmanager.yml").write_text(routed)
    for cmd in (["promtool", "check", "config", "prometheus.yml"], ["amtool", "check-config", "alertmanager.yml"]):
        if shutil.which(cmd[0]) is None:
            pytest.fail(f"{cmd[0]} is not installed: .ci/run installs it (apt-get install prometheus "
                        "prometheus-alertmanager)")  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert Layout(tmp_path).root.name == "sandbox"
