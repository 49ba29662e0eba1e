"""`drill analyze RUN_DIR [--sla FILE]`: re-judged from the raw records, beside the sealed originals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from drillbit import reports
from drillbit.cli import main
from drillbit.core.results import VerdictSet, read_model
from drillbit.reports.evidence import seal, verify
from drillbit.runs import write_slas
from drillbit.sla import Sla
from tests.unit.rundirs import T0, RunSpec, write_run_dir

RTO_15_MIN = Sla(metric="rto_s", op="<", target=900, requirement="R9.4", text="RTO < 15 min")


def _digests(run: Path) -> dict[str, str]:
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and "analysis" not in p.parts}  # fmt: skip


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    """An old run (events without fault ids, measurements from before issue 12), reported and sealed."""
    run = write_run_dir(tmp_path, RunSpec(kind="pass", outage_s=2.0))
    with (run / "events.jsonl").open("a") as f:  # the control's result as recorded before fault ids: paired by name
        f.write(json.dumps({"t": T0 + 10.05, "kind": "fault.result", "activity": "kill-one-replica", "role": "fault",
                            "landed": True}) + "\n")  # fmt: skip
    write_slas(run, {"rto": RTO_15_MIN})
    reports.build(run)
    seal(run)
    return run


def test_analyze_rejudges_by_the_runs_own_slas_without_touching_the_sealed_run(
    sealed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digests(sealed)
    assert main(["analyze", str(sealed)]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out.parent == sealed / "analysis" and out.is_dir()
    verdicts = read_model(out / "verdicts.json", VerdictSet)
    assert [(v.sla, v.verdict.value) for v in verdicts.verdicts] == [("rto", "PASS")]
    measurements = json.loads((out / "measurements.json").read_text())
    assert measurements["rto"]["rto_s"] == pytest.approx(2.0, abs=0.1) and len(measurements["rto"]["outages"]) == 1
    html = (out / "report.html").read_text()
    assert 'class="outages"' in html and "Fault time" in html  # every outage listed, and the fault time used
    assert "re-analysed" in json.loads((out / "run.json").read_text())["notes"][-1]
    assert _digests(sealed) == before and verify(sealed) == []  # the originals, byte for byte; still intact
    assert verify(out) == []  # the analysis is sealed on its own


def test_analyze_with_a_stricter_sla_file_fails_what_passed(sealed: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    strict = tmp_path / "strict.yaml"
    strict.write_text("slas:\n  rto: {metric: rto_s, op: '<', target: 1, requirement: R9.4, text: 'RTO < 1 s'}\n"
                      "default: [rto]\n")  # fmt: skip
    assert main(["analyze", str(sealed), "--sla", str(strict)]) == 1
    out = Path(capsys.readouterr().out.strip())
    (verdict,) = read_model(out / "verdicts.json", VerdictSet).verdicts
    assert verdict.verdict.value == "FAIL" and verdict.requirement_text == "RTO < 1 s"
    assert json.loads((out / "slas.json").read_text())["rto"]["target"] == 1
    assert read_model(sealed / "verdicts.json", VerdictSet).outcome.value == "PASS"  # the original stands


def test_analyze_of_a_directory_that_is_no_run_exits_2(tmp_path: Path) -> None:
    assert main(["analyze", str(tmp_path)]) == 2


def test_analyze_with_an_sla_file_adjusts_its_slas_for_the_load_the_run_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SLA file's locustfiles: applies as it did when the run ran: a run that recorded the marketdata
    load is held to what that load adds (a strict RTO here) and not to what it drops."""
    run = write_run_dir(tmp_path / "runs", RunSpec(kind="pass", outage_s=2.0))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "locustfile": "marketdata"}))
    write_slas(run, {"rto": RTO_15_MIN})
    reports.build(run)
    seal(run)
    slas = tmp_path / "slas.yaml"
    slas.write_text("slas:\n  rto: {metric: rto_s, op: '<', target: 900, requirement: R9.4, text: 'RTO < 15 min'}\n"
                    "  rto_md: {metric: rto_s, op: '<', target: 1, requirement: R9.4, text: 'RTO < 1 s'}\n"
                    "default: [rto]\nlocustfiles:\n  marketdata: {add: [rto_md], drop: [rto]}\n")  # fmt: skip
    assert main(["analyze", str(run), "--sla", str(slas)]) == 1
    out = Path(capsys.readouterr().out.strip())
    assert [(v.sla, v.verdict.value) for v in read_model(out / "verdicts.json", VerdictSet).verdicts] == [
        ("rto_md", "FAIL")]
