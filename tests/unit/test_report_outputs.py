"""summary.json (against its published schema), junit.xml (through junitparser), summary.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from drillbit import reports
from drillbit.core.errors import ConfigError
from drillbit.reports.markdown import md_escape
from drillbit.reports.summary import load_schema, read_summary, schema_json
from tests.unit.rundirs import RunSpec, write_run_dir

Built = Callable[[str], Path]
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "reports" / "schemas" / "summary.schema.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    parent = tmp_path_factory.mktemp("runs")
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = write_run_dir(parent, RunSpec(kind=kind, run_id=f"run-{kind}", xss=True))  # type: ignore[arg-type]
            reports.build(cache[kind])
        return cache[kind]

    return get


def test_published_schema_file_is_the_models_schema() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == schema_json()


def test_published_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


@pytest.mark.parametrize("kind", ["pass", "fail", "inconclusive", "interrupted", "observe"])
def test_summary_json_validates_against_the_published_schema(built: Built, kind: str) -> None:
    jsonschema.validate(json.loads((built(kind) / "summary.json").read_text()), json.loads(SCHEMA_FILE.read_text()))


def test_summary_carries_outcome_verdicts_and_headline_measurements(built: Built) -> None:
    s = json.loads((built("fail") / "summary.json").read_text())
    assert (s["outcome"], s["exit_code"], len(s["verdicts"])) == ("FAIL", 1, 3)
    assert s["measurements"]["rpo_lost"] == 3 and 17.5 < s["measurements"]["rto_s"] < 18.5
    assert s["measurements"]["latency_source"] == "measurements.json"


@pytest.mark.parametrize(("kind", "length"), [("fail", 18.0), ("pass", 2.0)])
def test_every_outage_after_the_fault_reaches_summary_json_md_and_junit(built: Built, kind: str, length: float) -> None:
    """The run's scripted outage (from the fault, ``length`` s long): listed in summary.json with its
    span, in summary.md and as JUnit properties, and the outages sum to the downtime."""
    d = built(kind)
    m = json.loads((d / "summary.json").read_text())["measurements"]
    (outage,) = m["outages"]
    assert outage["start_s"] == pytest.approx(0, abs=0.15) and outage["end_s"] == pytest.approx(length, abs=0.15)
    assert outage["failed_probes"] >= 10 * length - 2  # a probe every 100 ms
    assert sum(o["length_s"] for o in m["outages"]) == pytest.approx(m["downtime_s"])
    md = (d / "summary.md").read_text()
    assert f"| Outages after the fault | 1: {outage['start_s']:.1f} to {outage['end_s']:.1f} s" in md
    props = {p.name: p.value for p in next(iter(JUnitXml.fromfile(str(d / "junit.xml")))).properties()}
    assert props["outages"] == "1" and float(props["downtime_s"]) == pytest.approx(m["downtime_s"], abs=1e-3)
    assert props["outage_1"].startswith(f"{outage['start_s']:.3f}..{outage['end_s']:.3f} s")


def test_schema_rejects_a_summary_with_an_unknown_outcome(built: Built) -> None:
    s = json.loads((built("pass") / "summary.json").read_text())
    s["outcome"] = "MOSTLY"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(s, load_schema())


def test_read_summary_names_the_field_that_breaks_the_schema(built: Built, tmp_path: Path) -> None:
    s = json.loads((built("pass") / "summary.json").read_text())
    s["measurements"]["rpo_lost"] = "none"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(s))
    with pytest.raises(ConfigError, match=r"measurements\.rpo_lost: 'none' is not valid"):
        read_summary(path)


def _suite(d: Path) -> list[Any]:
    xml = JUnitXml.fromfile(str(d / "junit.xml"))
    return [case for suite in xml for case in suite]


def test_junit_has_one_testcase_per_verdict(built: Built) -> None:
    names = [c.name for c in _suite(built("pass"))]
    assert names == ["R9.4 rto: RTO < 15 min", "R9.4 rpo: RPO < 1 min (no acknowledged write lost)",
                     "R2.1 latency_p95: p95 latency < 50 ms"]  # fmt: skip


def test_junit_passing_verdicts_have_no_result(built: Built) -> None:
    assert all(c.is_passed for c in _suite(built("pass")))


def test_junit_failure_message_gives_measured_and_target(built: Built) -> None:
    rpo = _suite(built("fail"))[1]
    (failure,) = rpo.result
    assert isinstance(failure, Failure)
    assert failure.message == "measured 3 count, target == 0 count"


def test_junit_inconclusive_is_an_error_not_a_skip(built: Built) -> None:
    (case,) = _suite(built("inconclusive"))
    (result,) = case.result
    assert isinstance(result, Error) and not isinstance(result, Skipped)
    assert result.type == "INCONCLUSIVE"
    assert result.message.startswith("not measured (target < 900 s): the fault did not land")


def test_junit_of_an_interrupted_run_has_one_errored_testcase(built: Built) -> None:
    (case,) = _suite(built("interrupted"))
    (result,) = case.result
    assert isinstance(result, Error) and "the drill's status is interrupted" in result.message


def test_junit_totals_match_the_verdicts(built: Built) -> None:
    xml = JUnitXml.fromfile(str(built("fail") / "junit.xml"))
    suite = next(iter(xml))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 2, 0, 0)


def test_summary_md_heads_with_the_outcome_and_tabulates_verdicts(built: Built) -> None:
    md = (built("fail") / "summary.md").read_text()
    assert md.startswith("## drillbit: An API replica is killed and the service keeps serving — **FAIL**")
    assert "| R9.4 RPO &lt; 1 min \\(no acknowledged write lost\\) | rpo | == 0 count | 3 count | **FAIL** |" in md


def test_summary_md_of_an_interrupted_run_says_there_is_no_verdict(built: Built) -> None:
    md = (built("interrupted") / "summary.md").read_text()
    assert "NO VERDICT" in md and "Nothing here is a PASS" in md


def test_md_escape_keeps_table_cells_and_html_inert() -> None:
    assert md_escape("a|b <script>x</script>\nc") == "a\\|b &lt;script&gt;x&lt;/script&gt; c"


def test_build_summary_reads_without_writing(tmp_path: Path) -> None:
    d = write_run_dir(tmp_path, RunSpec(kind="pass"))
    summary = reports.build_summary(d)
    assert summary.outcome is not None and summary.outcome.value == "PASS"
    assert not (d / "summary.json").exists()
