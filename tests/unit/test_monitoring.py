"""infra/monitoring: the alert rules pass promtool (check and unit tests), the Alertmanager
configuration amtool and amlint; a broken rule file, a broken test expectation and a broken
configuration are each caught; every alert carries what the drills and the on-call need; the
committed PrometheusRule is the render of the rules. Tests that need promtool/amtool/amlint skip,
saying which package to install, only when the tool is not on this machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbit.manifests.monitoring import (
    EVALUATION_INTERVAL,
    RENDER_NAME,
    ToolMissing,
    check,
    find_tool,
    main,
    render,
    rule_files,
    rule_tests,
)

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "infra" / "monitoring"
BUDGET_S = 30.0  # seeds R3.3, R10.1

needs_promtool = pytest.mark.skipif(
    find_tool("promtool", ROOT) is None, reason="promtool missing: apt-get install prometheus"
)
needs_amtool = pytest.mark.skipif(
    find_tool("amtool", ROOT) is None, reason="amtool missing: apt-get install prometheus-alertmanager"
)
needs_amlint = pytest.mark.skipif(
    find_tool("amlint", ROOT) is None, reason="amlint missing: `make lint` installs it into .tools/amlint"
)


def _seconds(duration: str) -> float:
    """A Prometheus duration (``10s``, ``1m``, ``1h30m``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), duration
    return sum(int(n) * units[u] for n, u in parts)


def _alerts() -> list[dict[str, Any]]:
    return [
        r
        for f in rule_files(MONITORING)
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    ]


def _copy(tmp_path: Path, *, whole: bool = False) -> Path:
    """infra/monitoring copied; unless ``whole``, without the SLO rules (their tests take 3 s) and
    the render (so a broken copy fails only the check that the breakage is for)."""
    dst = tmp_path / "monitoring"
    shutil.copytree(MONITORING, dst)
    if not whole:
        for name in ("rules/api-slo.yml", "rules/api-slo_test.yml", RENDER_NAME):
            (dst / name).unlink()
    return dst


def _failed(steps: list[Any]) -> dict[str, str]:
    return {s.name: s.output for s in steps if not s.ok}


@needs_promtool
@needs_amtool
def test_the_shipped_rules_and_configuration_pass_promtool_and_amtool() -> None:
    steps = check(MONITORING, root=ROOT, amlint=False)
    assert _failed(steps) == {}
    names = [s.name for s in steps]
    assert names[:3] == ["promtool check rules", "promtool test rules", "amtool check-config"]
    tested = next(s for s in steps if s.name == "promtool test rules")
    assert "SUCCESS" in tested.output and all(str(t.name) in " ".join(tested.argv) for t in rule_tests(MONITORING))


@needs_amlint
def test_amlint_finds_nothing_and_every_route_is_tested() -> None:
    amlint = str(find_tool("amlint", ROOT))
    rules = [a for f in rule_files(MONITORING) for a in ("--rules", str(f))]
    lint = subprocess.run(
        [amlint, "check", "--strict", *rules, "alertmanager.yml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0 and "No issues found" in lint.stdout, lint.stdout + lint.stderr
    cases = subprocess.run(
        [amlint, "test", "--fail-under", "100", "alertmanager.yml", "alertmanager_test.yml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cases.returncode == 0 and "100.0%" in cases.stdout, cases.stdout + cases.stderr


@needs_promtool
@needs_amtool
def test_a_rule_that_does_not_parse_is_caught(tmp_path: Path) -> None:
    mon = _copy(tmp_path)
    rules = mon / "rules" / "database.yml"
    rules.write_text(
        rules.read_text().replace("sum by (scope) (patroni_primary) < 1", "sum by (scope) (patroni_primary < 1")
    )
    failed = _failed(check(mon, root=ROOT, amlint=False))
    assert "promtool check rules" in failed and "database.yml" in failed["promtool check rules"]
    assert "parse error" in failed["promtool check rules"]


@needs_promtool
@needs_amtool
def test_a_rule_that_no_longer_does_what_its_tests_say_is_caught(tmp_path: Path) -> None:
    """A valid rule, changed in meaning: ApiDown waiting a minute misses the 30 s; its test fails."""
    mon = _copy(tmp_path)
    rules = mon / "rules" / "api.yml"
    text = rules.read_text()
    assert "for: 10s  # critical" in text
    rules.write_text(text.replace("for: 10s  # critical", "for: 1m  # critical"))
    failed = _failed(check(mon, root=ROOT, amlint=False))
    assert list(failed) == ["promtool test rules"]  # it still parses
    assert "alertname: ApiDown" in failed["promtool test rules"]


@needs_promtool
@needs_amtool
def test_a_misnamed_alert_fails_its_tests(tmp_path: Path) -> None:
    mon = _copy(tmp_path)
    rules = mon / "rules" / "database.yml"
    rules.write_text(rules.read_text().replace("alert: DbPrimaryMissing", "alert: DbPrimaryMising"))
    failed = _failed(check(mon, root=ROOT, amlint=False))
    assert "promtool test rules" in failed and "DbPrimaryMissing" in failed["promtool test rules"]


@needs_promtool
@needs_amtool
def test_a_broken_alertmanager_configuration_is_caught(tmp_path: Path) -> None:
    mon = _copy(tmp_path)
    config = mon / "alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: ticket", "receiver: tikcet"))
    failed = _failed(check(mon, root=ROOT, amlint=False))
    assert list(failed) == ["amtool check-config"] and "tikcet" in failed["amtool check-config"]


@needs_promtool
@needs_amtool
@needs_amlint
def test_amlint_catches_a_route_that_can_never_match(tmp_path: Path) -> None:
    """Valid for amtool, wrong in meaning: a catch-all route above the warning route shadows it."""
    mon = _copy(tmp_path)
    config = mon / "alertmanager.yml"
    config.write_text(config.read_text().replace("  routes:\n", "  routes:\n    - receiver: page\n", 1))
    failed = _failed(check(mon, root=ROOT))
    assert "amtool check-config" not in failed and "amlint check" in failed and "amlint test" in failed


def test_every_alert_names_its_severity_requirement_summary_and_runbook() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} == {
        "ApiDown",
        "ApiErrorBudgetBurn",
        "ApiLatencyBudgetBurn",
        "ApiReplicasBelowMinimum",
        "DbPrimaryMissing",
        "ReplicationLagAboveRpo",
    }
    for a in alerts:
        assert a["labels"]["severity"] in ("critical", "warning"), a["alert"]
        assert re.fullmatch(r"R\d+\.\d+", a["labels"]["requirement"]), a["alert"]
        assert a["annotations"]["summary"].strip() and a["annotations"]["runbook_url"].startswith("https://")
        assert "for" in a, f"{a['alert']}: its `for` is chosen, never left to the default"
    burns = [a for a in alerts if a["alert"].endswith("BudgetBurn")]
    assert sorted((a["alert"], a["labels"]["severity"]) for a in burns) == [
        ("ApiErrorBudgetBurn", "critical"),
        ("ApiErrorBudgetBurn", "warning"),
        ("ApiLatencyBudgetBurn", "critical"),
        ("ApiLatencyBudgetBurn", "warning"),
    ]


def test_every_critical_alert_fits_the_30_s_budget() -> None:
    """scrape (5 s at most in production) + evaluation (5 s) + for + the critical route's group_wait."""
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    (critical,) = [r for r in config["route"]["routes"] if r["matchers"] == ['severity="critical"']]
    group_wait = _seconds(critical["group_wait"])
    for a in _alerts():
        if a["labels"]["severity"] == "critical":
            assert 5 + 5 + _seconds(a["for"]) + group_wait <= BUDGET_S - 5, a["alert"]  # 5 s left for delivery
    assert _seconds(EVALUATION_INTERVAL) <= 5


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for f in rule_tests(MONITORING):
        for group in yaml.safe_load(f.read_text())["tests"]:
            for t in group.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else silent).add(t["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names <= firing and names <= silent, (names - firing, names - silent)


def test_the_committed_prometheusrule_is_the_render_of_the_rules() -> None:
    committed = MONITORING / RENDER_NAME
    assert committed.read_text() == render(MONITORING), (
        f"{committed} is stale: python -m drillbit.manifests.monitoring render --out {committed.relative_to(ROOT)}"
    )


def test_the_render_holds_every_rule_unchanged_with_an_evaluation_interval() -> None:
    doc = yaml.safe_load(render(MONITORING))
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = [g for f in rule_files(MONITORING) for g in yaml.safe_load(f.read_text())["groups"]]
    assert [{k: v for k, v in g.items() if k != "interval"} for g in doc["spec"]["groups"]] == groups
    assert {g["interval"] for g in doc["spec"]["groups"]} == {EVALUATION_INTERVAL}


@needs_promtool
def test_the_rendered_groups_load_in_prometheus(tmp_path: Path) -> None:
    spec = yaml.safe_load((MONITORING / RENDER_NAME).read_text())["spec"]
    (tmp_path / "rendered.yml").write_text(yaml.safe_dump(spec))
    done = subprocess.run(
        [str(find_tool("promtool", ROOT)), "check", "rules", str(tmp_path / "rendered.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "SUCCESS: 18 rules found" in done.stdout, done.stdout + done.stderr


def test_a_missing_tool_is_an_error_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for tool in ("PROMTOOL", "AMTOOL", "AMLINT"):
        monkeypatch.delenv(f"DRILL_{tool}", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"promtool is not installed.*apt-get install prometheus"):
        check(MONITORING, root=tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["--dir", str(MONITORING), "check", "--no-amlint"]) == 4
    assert "apt-get install prometheus" in capsys.readouterr().err


def test_render_writes_the_file_the_check_compares(tmp_path: Path) -> None:
    mon = _copy(tmp_path, whole=True)
    (mon / RENDER_NAME).unlink()
    assert main(["--dir", str(mon), "render", "--out", str(mon / RENDER_NAME)]) == 0
    assert (mon / RENDER_NAME).read_text() == (MONITORING / RENDER_NAME).read_text()
