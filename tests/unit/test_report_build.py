"""reports.build: report.html, summary.json, junit.xml, summary.md for PASS, FAIL, INCONCLUSIVE,
interrupted and observe run directories; secrets redacted; script payloads inert."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from html import unescape
from pathlib import Path

import pytest

from drillbit import reports
from drillbit.core.redact import Redactor
from drillbit.core.results import AuditFields, ManifestFinding, RunInfo, read_model, write_model
from drillbit.manifests import record_manifests
from drillbit.reports.html import json_for_html
from tests.unit.rundirs import XSS, RunSpec, write_run_dir

CANARY = "CANARY-7f3e9a1c-secret"
OUTPUTS = ("report.html", "summary.json", "junit.xml", "summary.md")

Built = Callable[[str], Path]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Run directories of each kind, written and built once for the module (tests only read them)."""
    parent = tmp_path_factory.mktemp("runs")
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            d = write_run_dir(parent, RunSpec(kind=kind, run_id=f"run-{kind}", xss=True))  # type: ignore[arg-type]
            reports.build(d)
            cache[kind] = d
        return cache[kind]

    return get


def _html(d: Path) -> str:
    return (d / "report.html").read_text(encoding="utf-8")


def _text(html: str) -> str:
    """Visible text, roughly: tags dropped, whitespace collapsed, the embedded JSON left out."""
    html = re.sub(r"<script.*?</script>|<svg.*?</svg>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.mark.parametrize("kind", ["pass", "fail", "inconclusive", "interrupted", "observe"])
def test_build_writes_the_four_outputs(built: Built, kind: str) -> None:
    d = built(kind)
    assert all((d / name).stat().st_size > 0 for name in OUTPUTS)


def test_build_returns_the_paths_it_wrote(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    assert sorted(p.name for p in reports.build(d)) == sorted(OUTPUTS)


def test_pass_report_shows_pass_and_one_row_per_verdict(built: Built) -> None:
    html = _html(built("pass"))
    assert "Outcome: PASS" in _text(html)
    assert html.count('class="verdict-row"') == 3


def test_fail_report_shows_the_failed_requirement_with_measured_and_target(built: Built) -> None:
    text = _text(_html(built("fail")))
    assert "Outcome: FAIL" in text
    assert re.search(r"R9\.4 RPO < 1 min .*? rpo rpo_lost == 0 count 3 count FAIL", text)


def test_inconclusive_report_says_why(built: Built) -> None:
    text = _text(_html(built("inconclusive")))
    assert "Outcome: INCONCLUSIVE" in text
    assert "Inconclusive because: fault kill-one-replica did not land" in text


def test_interrupted_report_says_it_did_not_complete_and_what_is_missing(built: Built) -> None:
    text = _text(_html(built("interrupted")))
    assert "NO VERDICT" in text
    assert "This drill did not complete (status: interrupted)" in text
    assert "Not in this run directory: measurements.json, verdicts.json, load.json" in text


def test_interrupted_report_computes_latency_from_the_request_records(built: Built) -> None:
    summary = json.loads((built("interrupted") / "summary.json").read_text())
    assert summary["measurements"]["latency_source"] == "request records"
    assert summary["measurements"]["latency"]["baseline"]["count"] == 500


def test_interrupted_report_draws_the_timeline_from_the_sample_journal(built: Built) -> None:
    assert "Availability probes" not in _text(_html(built("interrupted")))  # text is drawn as paths, in the SVG
    assert _html(built("interrupted")).count("<svg") == 1


def test_report_gives_availability_per_phase_and_replica_restoration(built: Built) -> None:
    text = _text(_html(built("pass")))
    assert "Availability over the run: 95.000 % (20 of 400 probes failed, every 100 ms)" in text
    assert "Phase Probes Failed Available fault 100 20 80.000 %" in text
    assert "every region back at its desired count 3.0 s after the fault" in text


def test_observe_report_says_drillbit_did_not_inject(built: Built) -> None:
    text = _text(_html(built("observe")))
    assert "Observe mode: drillbit observed this run and did not inject any fault" in text


def test_empty_run_directory_renders_and_lists_everything_missing(tmp_path: Path) -> None:
    d = tmp_path / "crashed-early"
    d.mkdir()
    reports.build(d)
    text = _text(_html(d))
    assert "No run.json" in text
    assert "Not in this run directory: run.json, events.jsonl, journal.json, measurements.json" in text


def test_unreadable_files_are_reported_not_raised(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    (d / "measurements.json").write_text("{ torn")
    (d / "verdicts.json").write_text(json.dumps({"outcome": "MAYBE"}))
    reports.build(d)
    problems = json.loads((d / "summary.json").read_text())["problems"]
    assert problems[0].startswith("measurements.json: unreadable")
    assert problems[1].startswith("verdicts.json: does not match the contract: outcome:")


def test_values_of_the_wrong_type_do_not_break_the_report(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    m = json.loads((d / "measurements.json").read_text())
    m["rto"] = {"fault_at": "soon", "rto_s": "fast", "recovered_at": [], "error_bound_s": None}
    m["rpo"] = {"lost": "none", "duplicates": 3}
    m["latency"] = {"phases": {"all": {"count": "many", "p95_ms": "slow"}, "odd": 7}}
    m["availability"] = {"percent": "most", "phases": {"fault": {"probes": None}}}
    (d / "measurements.json").write_text(json.dumps(m))
    (d / "events.jsonl").write_text('{"t": "noon", "kind": 5}\n[1, 2]\n{"t": 1760000010.0, "kind": "mark"}\n')
    (d / "journal.json").write_text(json.dumps({"run": "x", "steady_states": [], "rollbacks": [None, 3]}))
    (d / "load.json").write_text("[1, 2]")
    reports.build(d)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["measurements"]["rto_s"] is None and summary["measurements"]["rpo_lost"] is None
    assert "events.jsonl: 2 event(s) without a numeric time skipped" in summary["problems"]


def test_torn_parquet_is_reported_not_raised(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    (d / "requests" / "worker-0.parquet").write_bytes(b"PAR1 torn")
    reports.build(d)
    assert "requests/: " in _text(_html(d))


def test_report_loads_nothing_from_the_network(built: Built) -> None:
    html = _html(built("fail"))
    assert not re.search(r"\ssrc\s*=|<link|@import|url\((?!#)", html, re.I)
    assert not re.search(r'href="(?!#)', html)


def test_report_has_a_strict_content_security_policy(built: Built) -> None:
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', _html(built("pass")))
    assert csp is not None
    assert "default-src 'none'" in csp.group(1) and "script-src 'none'" in csp.group(1)


def test_report_has_no_executable_script(built: Built) -> None:
    scripts = re.findall(r"<script\b[^>]*>", _html(built("fail")), re.I)
    assert scripts == ['<script type="application/json" id="drill-summary">']


@pytest.mark.parametrize("kind", ["fail", "inconclusive"])
def test_script_payloads_are_escaped_in_the_html(built: Built, kind: str) -> None:
    html = _html(built(kind))
    assert XSS not in html and "</script>alert" not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html


def test_script_payloads_are_inert_in_the_embedded_json(built: Built) -> None:
    html = _html(built("fail"))
    block = re.search(r'<script type="application/json" id="drill-summary">(.*?)</script>', html, re.S)
    assert block is not None
    assert "<" not in block.group(1) and "\\u003cscript\\u003e" in block.group(1)
    assert XSS in json.loads(block.group(1))["verdicts"][0]["reason"]


def test_json_for_html_escapes_every_markup_character() -> None:
    assert json_for_html({"a": "</script><b>&"}) == '{\n "a": "\\u003c/script\\u003e\\u003cb\\u003e\\u0026"\n}'


def _outputs(d: Path) -> str:
    return "".join((d / name).read_text(encoding="utf-8") for name in OUTPUTS)


def test_an_explicit_redactor_masks_the_canary_in_every_output(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="fail", canary=CANARY, declare_secret=False))
    reports.build(d, redactor=Redactor([CANARY]))
    assert CANARY in (d / "events.jsonl").read_text()  # planted in the inputs...
    assert CANARY not in _outputs(d)  # ...and in no output


def test_a_secret_env_var_is_masked_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILL_TEST_API_TOKEN", CANARY)
    d = write_run_dir(tmp_path, RunSpec(kind="fail", canary=CANARY, declare_secret=False))
    reports.build(d)
    assert CANARY not in _outputs(d)


def test_a_secret_declared_in_the_experiment_is_masked_by_default(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="fail", canary=CANARY, declare_secret=True))
    reports.build(d)
    assert CANARY not in _outputs(d)
    assert "connected with token ***" in _html(d)


def test_an_undeclared_secret_is_not_guessed(tmp_path: Path) -> None:
    """The control for the redaction tests: without a redactor entry the canary does reach the report."""
    d = write_run_dir(tmp_path, RunSpec(kind="fail", canary=CANARY, declare_secret=False))
    reports.build(d, redactor=Redactor([]))
    assert CANARY in _html(d)


def test_evidence_appendix_lists_every_input_file_with_its_sha256(built: Built) -> None:
    import hashlib

    d = built("pass")
    html = _html(d)
    journal_hash = hashlib.sha256((d / "journal.json").read_bytes()).hexdigest()
    row = re.search(r'<code>journal\.json</code></td><td class="num">[\d,]+</td><td><code>([0-9a-f]{64})</code>', html)
    assert row is not None and row.group(1) == journal_hash
    assert "requests/worker-0.parquet" in html and "samples/availability.parquet" in html


def test_audit_fields_appear_when_given(tmp_path: Path) -> None:
    audit = AuditFields(scope="region-a loss", participants=["alice", "bob"], approver="carol",
                        remediation="raise Patroni ttl")  # fmt: skip
    d = write_run_dir(tmp_path, RunSpec(kind="pass", audit=audit))
    reports.build(d)
    text = _text(_html(d))
    expected = "DR test record Scope region-a loss Participants alice, bob Approver carol Remediation raise Patroni ttl"
    assert expected in text


def test_audit_section_is_absent_when_no_field_is_given(built: Built) -> None:
    assert "DR test record" not in _html(built("pass"))


def test_rebuilding_gives_the_same_summary(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    reports.build(d)
    first = (d / "summary.json").read_bytes()
    shutil.rmtree(d / "samples")  # outputs are never read back as inputs, whatever else changes
    (d / "summary.json").write_text("stale")
    reports.build(d)
    assert json.loads((d / "summary.json").read_bytes())["outcome"] == json.loads(first)["outcome"]


def test_build_of_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    from drillbit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="not a run directory"):
        reports.build(tmp_path / "nope")


def test_report_shows_the_manifests_under_test_their_hash_and_findings(tmp_path: Path) -> None:
    """run.json's manifests_check (as a drill records it from the staging overlay, plus a finding
    whose message carries a script payload): the report names the overlay, the rendering's sha256
    and every finding, escaped."""
    d = write_run_dir(tmp_path, RunSpec(kind="pass", run_id="run-manifests"))
    recorded = record_manifests(Path(__file__).resolve().parents[2] / "infra" / "k8s" / "overlays" / "staging")
    bad = ManifestFinding(rule="DRILL-K8S-001", requirement="R1.5", severity="error", object="Deployment/api",
                          file="base/api.yaml", message=f"replicas: 1 {XSS}", source="drillbit")  # fmt: skip
    record = recorded.record.model_copy(update={"findings": [*recorded.record.findings, bad]})
    info = read_model(d / "run.json", RunInfo).model_copy(update={"manifests_check": record})
    write_model(d / "run.json", info)
    reports.build(d)
    html = (d / "report.html").read_text()
    assert record.rendered_sha256 in html and record.path in html
    assert XSS not in html and unescape(f"replicas: 1 {XSS}") in unescape(html)
    assert html.count('class="sev-') == len(record.findings)
