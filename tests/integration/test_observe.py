"""``drill observe`` against drillbit.testing.groundtruth: outages of exactly known start and length, which
drillbit does not inject. The measured RTO must match the truth within max(100 ms, one probe interval)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from drillbit.cli import main
from drillbit.core.events import read_events
from drillbit.core.results import MEASUREMENTS, RUN, Measurements, Outcome, RunInfo, read_model
from drillbit.observe import ObserveOptions, observe
from drillbit.testing.calibration import GroundTruth

INTERVAL = 0.1
TOLERANCE = max(0.1, INTERVAL)


def _observe(gt: GroundTruth, tmp_path: Path, **changes: object) -> tuple[Path, Measurements]:
    options = ObserveOptions(url=f"{gt.url}/", env=None, until_recovered=True, cooldown_s=0.0, duration_s=60,
                             interval_s=INTERVAL, out=tmp_path / "runs", state_dir=tmp_path / "state",
                             tty=False)  # fmt: skip
    result = observe(ObserveOptions(**{**options.__dict__, **changes}))
    return result.run_dir, read_model(result.run_dir / MEASUREMENTS, Measurements)


def _schedule(gt: GroundTruth, windows: list[tuple[float, float]]) -> tuple[float, float]:
    """Outages (start_in, duration) from now; returns the truth: first start and last end."""
    spans = [gt.outage("fail", duration, start_in) for start_in, duration in windows]
    return spans[0][0], spans[-1][1]


@pytest.mark.parametrize("duration", [0.5, 2.0, 5.0])
def test_a_detected_outage_gives_the_true_rto(groundtruth: GroundTruth, tmp_path: Path, duration: float) -> None:
    start, end = _schedule(groundtruth, [(2.0, duration)])
    run_dir, m = _observe(groundtruth, tmp_path)
    assert m.fault_source == "detected"
    assert m.fault_at == pytest.approx(start, abs=TOLERANCE)
    assert m.rto is not None and m.rto.rto_s == pytest.approx(end - start, abs=TOLERANCE), m.rto
    assert m.rto.detect_s is None and "undefined" in m.rto.fault_time
    info = read_model(run_dir / RUN, RunInfo)
    assert info.mode == "observe" and info.outcome is Outcome.PASS


def test_a_flapping_outage_is_measured_to_its_end_not_the_first_success(
    groundtruth: GroundTruth, tmp_path: Path
) -> None:
    """Down 1 s, up 1 s, down 1.5 s, up 0.5 s, down 1 s: recovery is the end of the last window."""
    start, end = _schedule(groundtruth, [(2.0, 1.0), (4.0, 1.5), (6.0, 1.0)])
    _, m = _observe(groundtruth, tmp_path)
    assert m.rto is not None and m.rto.rto_s == pytest.approx(end - start, abs=TOLERANCE), m.rto
    assert m.rto.recovered_at == pytest.approx(end, abs=TOLERANCE)


def test_a_mark_from_another_process_is_the_fault_time(groundtruth: GroundTruth, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "DRILL_STATE_DIR": str(state)}
    cmd = [sys.executable, "-m", "drillbit.cli", "observe", "--url", f"{groundtruth.url}/", "--until-recovered",
           "--cooldown", "0", "--duration", "60s", "--out", str(tmp_path / "runs"), "--plain"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "runs").glob("*/samples/availability.json")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        time.sleep(1.0)
        before = time.time()
        marked = subprocess.run([sys.executable, "-m", "drillbit.cli", "mark", "pulled the plug", "--kind", "fault"],
                                env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
        after = time.time()
        assert marked.returncode == 0, marked.stderr
        start, end = groundtruth.outage("fail", 2.0, 0.5)  # the operator's action takes effect 0.5 s later
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    (run_dir,) = (tmp_path / "runs").iterdir()
    m = read_model(run_dir / MEASUREMENTS, Measurements)
    (mark,) = [e for e in read_events(run_dir / "events.jsonl") if e["kind"] == "mark"]
    assert m.fault_source == "marked" and m.fault_at == mark["t"]
    assert before <= m.fault_at <= after
    assert m.rto is not None and m.rto.rto_s == pytest.approx(end - m.fault_at, abs=TOLERANCE)
    # mark -> the answer of the first failed probe: never before the outage began, and late by at most one
    # probe interval (the first probe sent after it) plus that probe's round trip (TOLERANCE)
    truth = start - m.fault_at
    assert truth - 0.01 <= m.rto.detect_s <= truth + INTERVAL + TOLERANCE, (m.rto.detect_s, truth)


def _no_observer_left(tmp_path: Path) -> None:
    for p in psutil.process_iter(["cmdline"]):
        assert str(tmp_path) not in " ".join(p.info["cmdline"] or []), p.info["cmdline"]


def test_an_unreachable_url_is_an_environment_error_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["observe", "--url", "http://127.0.0.1:1/", "--out", str(tmp_path / "runs"), "--duration", "5s"])
    assert code == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing answers at http://127.0.0.1:1/" in err
    assert not (tmp_path / "runs").exists()
    _no_observer_left(tmp_path)


def test_a_dsn_the_database_refuses_is_a_usage_error(
    groundtruth: GroundTruth, pg_server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = pg_server.dsn().replace("user=postgres", "user=nobody")  # type: ignore[attr-defined]
    code = main(["observe", "--url", f"{groundtruth.url}/", "--dsn", dsn, "--out", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--dsn: the database refused it" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_malformed_dsn_is_a_usage_error(groundtruth: GroundTruth, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["observe", "--url", f"{groundtruth.url}/", "--dsn", "not a dsn"]) == 2
    assert "--dsn: not a valid DSN" in capsys.readouterr().err


def test_mark_without_an_active_observation_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mark", "failover started", "--state-dir", str(tmp_path)]) == 2
    assert "no active observation" in capsys.readouterr().err


def test_sigint_ends_an_observation_cleanly_and_it_is_still_reported(
    groundtruth: GroundTruth, tmp_path: Path
) -> None:
    start, end = _schedule(groundtruth, [(1.5, 1.0)])
    timer = threading.Timer(10.0, lambda: os.kill(os.getpid(), 2))
    timer.start()
    try:
        run_dir, m = _observe(groundtruth, tmp_path, until_recovered=False, duration_s=120)
    finally:
        timer.cancel()
    assert m.rto is not None and m.rto.rto_s == pytest.approx(end - start, abs=TOLERANCE)
    assert (run_dir / "verdicts.json").exists() and (run_dir / "report.html").exists()
