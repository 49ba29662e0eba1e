"""`drill report`, `drill report trend|compare`, `drill seal`, `drill verify` through drillbit.cli.main."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drillbit import reports
from drillbit.cli import main
from drillbit.reports.evidence import generate_key
from tests.unit.rundirs import RunSpec, write_run_dir

DAY = 86_400.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/: a baseline, a candidate 30 % slower, one 3 % slower, and a failed drill a day apart."""
    parent = tmp_path_factory.mktemp("runs")
    specs = [RunSpec(kind="pass", run_id="d1-baseline", started_at=1.76e9),
             RunSpec(kind="pass", run_id="d2-slower", started_at=1.76e9 + DAY, slowdown=1.3),
             RunSpec(kind="pass", run_id="d3-similar", started_at=1.76e9 + 2 * DAY, slowdown=1.03),
             RunSpec(kind="fail", run_id="d4-failed", started_at=1.76e9 + 3 * DAY)]  # fmt: skip
    for spec in specs:
        reports.build(write_run_dir(parent, spec))
    return parent


@pytest.fixture
def run(runs: Path, tmp_path: Path) -> Path:
    d = tmp_path / "d1-baseline"
    shutil.copytree(runs / "d1-baseline", d)
    return d


def test_report_run_dir_rebuilds_the_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()
    assert capsys.readouterr().out.splitlines()[0] == str(run / "report.html")


def test_report_build_is_the_same_command_spelled_out(run: Path) -> None:
    (run / "junit.xml").unlink()
    assert main(["report", "build", str(run)]) == 0
    assert (run / "junit.xml").is_file()


def test_report_of_a_missing_directory_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drill: error:") and "not a run directory" in err[0]


def test_report_trend_writes_one_page_over_the_runs(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "trend.html"
    assert main(["report", "trend", str(runs), "--out", str(out)]) == 0
    html = out.read_text()
    assert html.count("<svg ") == 3 and html.count("<tr><td class=\"mono\">") == 4
    assert "3 PASS" in html and "1 FAIL" in html


def test_report_trend_of_a_directory_without_runs_exits_2(tmp_path: Path) -> None:
    assert main(["report", "trend", str(tmp_path), "--out", str(tmp_path / "t.html")]) == 2


def test_compare_exits_1_on_a_p95_regression(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "compare", str(runs / "d1-baseline"), str(runs / "d2-slower")]) == 1
    assert "verdict: REGRESSION" in capsys.readouterr().out


def test_compare_exits_0_within_the_limit(runs: Path) -> None:
    assert main(["report", "compare", str(runs / "d1-baseline"), str(runs / "d3-similar")]) == 0


def test_compare_limit_is_configurable(runs: Path) -> None:
    args = ["report", "compare", str(runs / "d1-baseline"), str(runs / "d3-similar")]
    assert main([*args, "--max-p95-regression-pct", "1"]) == 1


def test_compare_writes_html_side_by_side(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    main(["report", "compare", str(runs / "d1-baseline"), str(runs / "d2-slower"), "--out", str(out)])
    html = out.read_text()
    assert "Comparison: REGRESSION" in html and "d1-baseline" in html and "d2-slower" in html


def test_compare_rejects_a_negative_limit(runs: Path) -> None:
    args = ["report", "compare", str(runs / "d1-baseline"), str(runs / "d3-similar")]
    assert main([*args, "--max-p95-regression-pct", "-5"]) == 2


def test_seal_then_verify_exits_0(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", str(run)]) == 0
    assert main(["verify", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{run}: intact"


def test_verify_exits_1_naming_each_problem_on_its_own_line(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["seal", str(run)])
    capsys.readouterr()
    (run / "summary.md").write_text("edited")
    (run / "events.jsonl").unlink()
    assert main(["verify", str(run)]) == 1
    out = capsys.readouterr()
    assert [line.split(":")[0] for line in out.out.splitlines()] == ["events.jsonl", "summary.md"]
    assert out.err.strip() == f"drill: error: {run}: evidence does not verify (2 problem(s))"


def test_signed_seal_verifies_with_the_public_key(run: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub")
    assert main(["seal", str(run), "--key", str(tmp_path / "k.pem")]) == 0
    assert main(["verify", str(run), "--key", str(tmp_path / "k.pub")]) == 0


def test_verify_with_the_wrong_key_exits_1(run: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "k.pem", tmp_path / "k.pub")
    generate_key(tmp_path / "other.pem", tmp_path / "other.pub")
    main(["seal", str(run), "--key", str(tmp_path / "k.pem")])
    assert main(["verify", str(run), "--key", str(tmp_path / "other.pub")]) == 1


def test_seal_with_an_unreadable_key_exits_2(run: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    assert main(["seal", str(run), "--key", str(tmp_path / "bad.pem")]) == 2


def test_verify_of_an_unsealed_run_exits_2(run: Path) -> None:
    assert main(["verify", str(run)]) == 2


def test_report_schema_prints_the_summary_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["report", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == "drillbit.summary/2"
