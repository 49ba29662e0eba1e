"""The report's soak section (id="drift"): RSS per harness process, p95 per window, the slopes."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drillbit import reports
from drillbit.core.redact import Redactor
from drillbit.core.rundir import HARNESS, HARNESS_REMOTE, HARNESS_SCHEMA
from drillbit.probes.drift import MB
from tests.unit.rundirs import T0, RunSpec, write_requests, write_run_dir

CANARY_HOST = "CANARY-host-5b1d"


def _harness(run: Path, name: str, pid: int, minutes: float, mb_per_min: float, *, remote: bool = False,
             host: str = "ci-runner-1", start: float = T0) -> None:  # fmt: skip
    n = int(minutes * 60)
    t = start + np.arange(n, dtype=float)
    rss = (60 + mb_per_min * np.arange(n) / 60) * MB
    table = pa.table({"t": t, "role": ["worker" if remote else "drill"] * n, "worker": [2 if remote else None] * n,
                      "pid": [pid] * n, "host": [host] * n, "remote": [remote] * n, "rss_bytes": rss.astype(np.int64),
                      "cpu_percent": np.full(n, 12.0), "busy_percent": np.full(n, 14.0)},
                     schema=HARNESS_SCHEMA)  # fmt: skip
    (run / name).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, run / name)


def _section(run: Path) -> str:
    html = (run / "report.html").read_text(encoding="utf-8")
    match = re.search(r'<section id="drift">.*?</section>', html, flags=re.S)
    assert match is not None, "no drift section"
    return re.sub(r"<svg.*?</svg>", "", match.group(0), flags=re.S)


def test_a_drill_s_report_shows_each_harness_process_and_says_a_short_soak_is_not_judged(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path, RunSpec(kind="pass", run_id="run-short"))
    _harness(run, HARNESS, 4242, 0.7, 0.0)
    _harness(run, HARNESS_REMOTE, 77, 0.7, 0.0, remote=True, host="loadgen-2")
    reports.build(run)
    section = _section(run)
    assert "drill (pid 4242)" in section and "remote worker 2 (pid 77 on loadgen-2)" in section
    assert "Too short to judge" in section and "by itself, on loadgen-2" in section
    assert "p95" in section and "ms per 10 min" in section
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="drift-memory' in html and 'id="drift-latency' in html  # both charts drawn


def test_an_hour_s_soak_shows_the_slope_and_the_windows_unqualified(tmp_path: Path) -> None:
    run = tmp_path / "run-soak"
    _harness(run, HARNESS, 4242, 60, 2.0)
    write_requests(run, 60 * 60 * 5, rate=5, start=T0)
    reports.build(run)
    section = _section(run)
    assert "Too short" not in section and "2.000 MB/min" in section and "(steepest)" in section
    assert section.count("<tr><td>") >= 59  # a row per process and per 1-min window (59 after the warm-up)


def test_a_run_without_harness_samples_has_no_soak_section(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path, RunSpec(kind="pass", run_id="run-none"))
    reports.build(run)
    assert 'id="drift"' not in (run / "report.html").read_text(encoding="utf-8")


def test_a_secret_in_a_hostname_is_redacted_before_rendering(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Masked by the section itself, not only by the last line of defence (which warns when it has to)."""
    run = write_run_dir(tmp_path, RunSpec(kind="pass", run_id="run-secret"))
    _harness(run, HARNESS_REMOTE, 77, 0.7, 0.0, remote=True, host=CANARY_HOST)
    with caplog.at_level(logging.WARNING, logger="drillbit.reports.builder"):
        reports.build(run, redactor=Redactor({CANARY_HOST}))
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="drift"' in html and CANARY_HOST not in html
    assert not [r for r in caplog.records if "survived redaction" in r.getMessage()], caplog.text
