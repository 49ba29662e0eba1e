"""drillbit.annotations against a real loopback HTTP server that records what it receives (no
Grafana runs here): the annotations match the events, the token travels only in the
Authorization header, and a Grafana that is down or failing is reported, never raised."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drillbit.annotations import GrafanaConfig, annotate_run, annotations_from_events, post_annotations
from tests.grafana_fake import Recorder, recording_grafana

TOKEN = "glsa_token-4f1e9a7c-canary"
TOKEN_ENV = "DRILL_GRAFANA_AUTH"  # a name the redactor does not take for a secret by itself
T0 = 1_796_000_000.0
RUN_ID = "20261202T170000Z-region-loss"

EVENTS: list[dict[str, Any]] = [
    {"t": T0, "kind": "phase", "name": "baseline"},
    {"t": T0 + 10.0, "kind": "phase", "name": "fault"},
    {"t": T0 + 10.0, "kind": "fault.inject", "activity": "lose region-a", "fault_id": "f1",
     "action": "drillbit.faults.lose_region", "arguments": {"region": "region-a"}},
    {"t": T0 + 10.5, "kind": "fault.result", "activity": "lose region-a", "fault_id": "f1", "role": "fault",
     "landed": True, "status": "succeeded"},
    {"t": T0 + 12.0, "kind": "fault.inject", "activity": "kill one", "fault_id": "f2",
     "action": "drillbit.faults.kill_replicas"},
    {"t": T0 + 12.25, "kind": "fault.result", "activity": "kill one", "fault_id": "f2", "role": "fault",
     "landed": False, "status": "succeeded", "error": "the target did not confirm the fault took effect"},
    {"t": T0 + 30.0, "kind": "phase", "name": "recovery"},
    {"t": T0 + 31.0, "kind": "fault.revert", "activity": "restore region-a", "fault_id": "r1",
     "action": "drillbit.faults.restore_region"},
    {"t": T0 + 33.0, "kind": "fault.result", "activity": "restore region-a", "fault_id": "r1", "role": "revert",
     "landed": True, "status": "succeeded"},
    {"t": T0 + 50.0, "kind": "phase", "name": "after"},
    {"t": T0 + 60.0, "kind": "drill.end", "status": "PASS"},
]  # fmt: skip


@pytest.fixture
def grafana() -> Iterator[Recorder]:
    with recording_grafana() as recorder:
        yield recorder


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_token_anywhere(*outputs: str) -> None:
    for out in outputs:
        assert TOKEN not in out and TOKEN[5:25] not in out


def test_the_posted_annotations_match_the_events(grafana: Recorder, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    caplog.set_level(logging.DEBUG)
    result = post_annotations(grafana.url, EVENTS, run_id=RUN_ID, experiment="region-loss", token_env=TOKEN_ENV,
                              dashboard_uid="trading-overview", tags=["team-a"])  # fmt: skip
    assert result.ok and result.posted == result.attempted == 6 and result.ids == [1, 2, 3, 4, 5, 6]
    assert {r["path"] for r in grafana.requests} == {"/api/annotations"}
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)
    bodies = [r["body"] for r in grafana.requests]
    assert all(b["dashboardUID"] == "trading-overview" for b in bodies)
    assert all(b["tags"][:4] == ["drillbit", RUN_ID, "region-loss", "team-a"] for b in bodies)
    ms = lambda s: round((T0 + s) * 1000)  # noqa: E731
    spans = {(b["tags"][4], b["tags"][5]): (b["time"], b["timeEnd"]) for b in bodies}
    assert spans == {
        ("phase", "baseline"): (ms(0), ms(10)),
        ("phase", "fault"): (ms(10), ms(30)),
        ("phase", "recovery"): (ms(30), ms(50)),
        ("phase", "after"): (ms(50), ms(60)),  # to drill.end
        ("fault", "lose_region"): (ms(10), ms(31)),  # to its revert
        # drillbit.core.events's reading: a rollback ends every fault injected before it
        ("fault", "kill_replicas"): (ms(12), ms(31)),
    }  # fmt: skip
    texts = {b["tags"][5]: b["text"] for b in bodies}
    assert "'lose region-a'" in texts["lose_region"] and "landed" in texts["lose_region"]
    assert "did NOT land: the target did not confirm" in texts["kill_replicas"]
    assert [b["time"] for b in bodies] == sorted(b["time"] for b in bodies)
    out = capsys.readouterr()
    _no_token_anywhere(result.model_dump_json(), caplog.text, out.out, out.err)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unreachable_grafana_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    url = f"http://127.0.0.1:{_closed_port()}"
    result = post_annotations(url, EVENTS, run_id=RUN_ID, experiment="region-loss", token_env=TOKEN_ENV,
                              timeout_s=2)  # fmt: skip
    assert not result.ok and result.posted == 0 and result.attempted == 1  # the rest are not tried
    assert len(result.errors) == 1 and "unreachable" in result.errors[0] and url in result.errors[0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "drillbit.annotations"]
    assert len(warnings) == 1 and "0 of 6 posted" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    _no_token_anywhere(result.model_dump_json(), caplog.text)


def test_a_failing_grafana_is_reported_and_its_echo_of_the_token_masked(grafana: Recorder,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture
                                                                         ) -> None:  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    grafana.status = 500
    result = post_annotations(grafana.url, EVENTS, run_id=RUN_ID, experiment="region-loss", token_env=TOKEN_ENV)
    assert result.posted == 0 and result.attempted == 6 and len(result.errors) == 6
    assert all("answered HTTP 500" in e and "***" in e for e in result.errors), result.errors
    assert TOKEN in json.dumps(grafana.requests)  # it was sent (the header) ...
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "(and 5 more)" in warnings[0]
    _no_token_anywhere(result.model_dump_json(), caplog.text)  # ... and is nowhere else


def test_a_token_variable_that_is_not_set_posts_nothing(grafana: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = post_annotations(grafana.url, EVENTS, run_id=RUN_ID, experiment="e", token_env=TOKEN_ENV)
    assert result.errors == [f"${TOKEN_ENV} is not set: no annotation posted to {grafana.url}"]
    assert grafana.requests == []
    # no token at all (a Grafana without auth): no Authorization header
    assert post_annotations(grafana.url, EVENTS, run_id=RUN_ID, experiment="e", token_env=None).posted == 6
    assert all("Authorization" not in r["headers"] for r in grafana.requests)


def test_annotate_run_reads_the_run_directory(grafana: Recorder, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    run_dir = tmp_path / RUN_ID
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS) + '{"t": 1, "ki')  # torn
    (run_dir / "run.json").write_text(json.dumps({"id": RUN_ID, "experiment": {"path": "experiments/region-loss.yaml",
                                                                               "sha256": "0" * 64}}))  # fmt: skip
    config = GrafanaConfig(url=grafana.url + "/", token_env=TOKEN_ENV)
    result = annotate_run(run_dir, config)
    assert result.ok and result.posted == 6
    assert all(r["body"]["tags"][:3] == ["drillbit", RUN_ID, "region-loss"] for r in grafana.requests)
    assert all("dashboardUID" not in r["body"] for r in grafana.requests)  # organisation-wide
    missing = annotate_run(tmp_path / "nothing-here", config)
    assert missing.posted == 0 and "no events" in missing.errors[0]


def test_points_when_a_fault_has_no_end_and_an_unended_drill() -> None:
    verified = [*EVENTS[:6], {"t": T0 + 60.0, "kind": "drill.end"}]  # no rollback: the kill ends at its verdict
    kill = next(a for a in annotations_from_events(verified, "r", "e") if a.tags[-1] == "kill_replicas")
    assert (kill.time, kill.timeEnd) == (round((T0 + 12) * 1000), round((T0 + 12.25) * 1000))
    events = [{"t": T0, "kind": "phase", "name": "baseline"}, {"t": T0 + 5, "kind": "phase", "name": "fault"},
              {"t": T0 + 5, "kind": "fault.inject", "activity": "k", "action": "drillbit.faults.kill_replicas"},
              {"t": T0 + 7, "kind": "activity.end", "activity": "x"}]  # fmt: skip
    by_tag = {a.tags[-1]: a for a in annotations_from_events(events, "r", "e")}
    base, fault_phase, fault = by_tag["baseline"], by_tag["fault"], by_tag["kill_replicas"]
    assert (base.time, base.timeEnd) == (round(T0 * 1000), round((T0 + 5) * 1000))
    assert fault_phase.timeEnd == round((T0 + 7) * 1000)  # the last event: the drill did not end
    assert fault.time == fault.timeEnd == round((T0 + 5) * 1000)  # a point
    assert "did NOT land: no result recorded" in fault.text


@pytest.mark.parametrize(("config", "problem"), [
    ({"url": "https://g.example", "token": TOKEN}, "extra"),  # the token itself never goes in drill.yaml
    ({"url": "https://admin:pw@g.example"}, "credentials"),
    ({"url": "ftp://g.example"}, "http(s)"),
    ({"url": "https://g.example", "token_env": "NOT A NAME"}, "token_env"),
    ({"url": "https://g.example", "dashboard_uid": "../x"}, "dashboard_uid"),
])  # fmt: skip
def test_the_config_is_validated_at_the_edge(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        GrafanaConfig.model_validate(config)
    ok = GrafanaConfig.model_validate({"url": "https://g.example/", "dashboard_uid": "trading-overview"})
    assert ok.url == "https://g.example" and ok.token_env == "DRILL_GRAFANA_TOKEN"
