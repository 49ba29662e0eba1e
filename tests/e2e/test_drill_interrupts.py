"""Interrupted drills leave no fault behind: SIGINT/SIGTERM at several points, and a SIGKILLed drill
cleaned up by the next invocation. ``drill run`` runs as a real subprocess against the shared sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml

from drillbit.core.events import read_events
from drillbit.core.results import MEASUREMENTS, RUN, RunInfo, RunStatus, read_model
from drillbit.ledger import find_orphan
from drillbit.runner import RunOptions, clean_orphan
from drillbit.targets.sandbox.driver import SandboxTarget
from drillbit.targets.sandbox.sandbox import Sandbox

pytestmark = pytest.mark.slow

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _short_copy(name: str, tmp_path: Path) -> Path:
    """The shipped experiment with 3 s baseline and cool-down (same file stem: same SLAs)."""
    exp = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    for ext in exp["extensions"]:
        if ext["name"] == "drillbit":
            ext.update(baseline_s=3, cooldown_s=3)
    path = tmp_path / "exp" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


def _start(sandbox: Sandbox, experiment: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DRILL_STATE_DIR": str(sandbox.layout.state_dir)}
    cmd = [sys.executable, "-m", "drillbit.cli", "run", str(experiment), "--out", str(out), "--plain"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _events(out: Path) -> list[dict[str, object]]:
    files = list(out.glob("*/events.jsonl"))
    return read_events(files[0]) if files else []


def _wait_for(out: Path, proc: subprocess.Popen[str], what: Callable[[list[dict[str, object]]], bool],
              timeout: float = 120) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the drill ended early: {proc.communicate()[0][-3000:]}"
        if what(_events(out)):
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting; events: {[e['kind'] for e in _events(out)]}")


def _phase(name: str) -> Callable[[list[dict[str, object]]], bool]:
    return lambda events: any(e["kind"] == "phase" and e.get("name") == name for e in events)


def _landed(events: list[dict[str, object]]) -> bool:
    return any(e["kind"] == "fault.result" and e.get("landed") for e in events)


def _run_dir(out: Path) -> Path:
    (run_dir,) = out.iterdir()
    return run_dir


def _generators(run_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info["cmdline"] or []
        if "locust" in " ".join(cmdline) and str(run_dir) in " ".join(cmdline):
            found.append(p)
    return found


def _interrupt(sandbox: Sandbox, tmp_path: Path, experiment: str, when: Callable[[list[dict[str, object]]], bool],
               sig: signal.Signals, settle: float = 0.0) -> tuple[int, str, Path]:  # fmt: skip
    out = tmp_path / "runs"
    proc = _start(sandbox, _short_copy(experiment, tmp_path), out)
    try:
        _wait_for(out, proc, when)
        time.sleep(settle)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output[-4000:])
    return proc.returncode, output, _run_dir(out)


def _assert_clean(sandbox: Sandbox, run_dir: Path, output: str) -> None:
    info = read_model(run_dir / RUN, RunInfo)
    assert info.status is RunStatus.INTERRUPTED and info.exit_code == 3
    assert (run_dir / MEASUREMENTS).exists()
    assert "Traceback" not in output
    assert SandboxTarget(sandbox).whole(), sandbox.status()
    assert _generators(run_dir) == []
    assert find_orphan(sandbox.layout.state_dir) is None


def test_sigint_during_the_baseline_injects_nothing_and_keeps_the_samples(sandbox_env: Sandbox, tmp_path: Path) -> None:
    code, output, run_dir = _interrupt(sandbox_env, tmp_path, "pod-kill", _phase("baseline"), signal.SIGINT, 1.0)
    assert code == 3
    _assert_clean(sandbox_env, run_dir, output)
    events = read_events(run_dir / "events.jsonl")
    assert not any(e["kind"] == "fault.inject" for e in events)
    assert (run_dir / "samples" / "availability.parquet").exists()


def test_sigterm_while_a_region_is_lost_restores_it(sandbox_env: Sandbox, tmp_path: Path) -> None:
    code, output, run_dir = _interrupt(sandbox_env, tmp_path, "region-loss", _landed, signal.SIGTERM, 2.0)
    assert code == 3
    _assert_clean(sandbox_env, run_dir, output)
    kinds = [e["kind"] for e in read_events(run_dir / "events.jsonl")]
    assert "fault.inject" in kinds and "fault.revert" in kinds  # chaostoolkit ran the rollback
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"  # the method stopped: no further fault after the signal
    signals = [e for e in read_events(run_dir / "events.jsonl") if e["kind"] == "signal"]
    assert [(e["signal"], e["during"]) for e in signals] == [("SIGTERM", "method")]


def test_sigint_during_recovery_ends_the_drill_cleanly_and_keeps_what_it_measured(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    """The pod-kill drill as shipped up to its recovery window (the runner's own wait, after the
    experiment and its rollbacks), then SIGINT: the drill ends at once as INTERRUPTED, healed, the
    generator gone, both faults' results and the samples kept. (A lasting fault healed after a
    signal: the SIGTERM-while-a-region-is-lost test; a lost database node: the data drills' SIGINTs.)"""
    code, output, run_dir = _interrupt(sandbox_env, tmp_path, "pod-kill", _phase("recovery"), signal.SIGINT)
    assert code == 3
    events = read_events(run_dir / "events.jsonl")
    faults = [e for e in events if e["kind"] == "fault.result" and e.get("role") == "fault"]
    assert [f["landed"] for f in faults] == [True, True], faults
    signals = [e for e in events if e["kind"] == "signal"]
    assert signals == [] or all(e.get("during") != "method" for e in signals), signals  # not the experiment's
    assert (run_dir / "samples" / "availability.parquet").exists()
    _assert_clean(sandbox_env, run_dir, output)


def test_a_sigkilled_drill_is_cleaned_up_by_the_next_invocation(sandbox_env: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = _start(sandbox_env, _short_copy("region-loss", tmp_path), out)
    try:
        _wait_for(out, proc, _landed)
        run_dir = _run_dir(out)
        orphans = _generators(run_dir)
        assert orphans, "the load generator runs"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not SandboxTarget(sandbox_env).whole()  # region-a is still lost: nothing rolled it back
    assert find_orphan(sandbox_env.layout.state_dir) is not None
    said: list[str] = []
    entry = clean_orphan(RunOptions(state_dir=sandbox_env.layout.state_dir, say=said.append))
    assert entry is not None and entry.run_dir == str(run_dir.resolve())
    assert SandboxTarget(sandbox_env).whole(), sandbox_env.status()
    assert psutil.wait_procs(orphans, timeout=10)[1] == []
    info = read_model(run_dir / RUN, RunInfo)
    assert info.status is RunStatus.CRASHED and info.exit_code == 3
    assert (run_dir / MEASUREMENTS).exists()
    assert find_orphan(sandbox_env.layout.state_dir) is None
    assert any("restored region-a" in s for s in said), said


def test_a_generator_process_sigkilled_mid_drill_leaves_latency_inconclusive_never_pass(
    sandbox_env: Sandbox, tmp_path: Path
) -> None:
    """``drill run pod-kill.yaml --workers 2``; once the first fault landed and both generator processes have
    written records, one of them is SIGKILLed: the drill still ends, healed, and says what it lost (the process's
    unreadable part or its missing schedule record), and the latency verdicts are INCONCLUSIVE: never a PASS on
    a silent undercount."""
    out = tmp_path / "runs"
    env = {**os.environ, "DRILL_STATE_DIR": str(sandbox_env.layout.state_dir)}
    cmd = [sys.executable, "-m", "drillbit.cli", "run", str(_short_copy("pod-kill", tmp_path)), "--out", str(out),
           "--plain", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(out, proc, _landed)
        run_dir = _run_dir(out)
        deadline = time.monotonic() + 20
        while {f.name.split(".")[0] for f in (run_dir / "requests").glob("worker-*.parquet")} != {"worker-0",
                                                                                                  "worker-1"}:
            assert time.monotonic() < deadline, list((run_dir / "requests").glob("*"))
            time.sleep(0.2)
        generators = _generators(run_dir)
        forked = [p for p in generators if p.ppid() in {g.pid for g in generators}]  # Locust's worker processes
        assert len(forked) == 2, generators
        forked[0].send_signal(signal.SIGKILL)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(output[-4000:])
    assert proc.returncode == 3 and "Traceback" not in output
    load = json.loads((run_dir / "load.json").read_text())
    assert not load["complete"] and any("left no schedule record" in n or "unreadable" in n for n in load["notes"])
    verdicts = {v["sla"]: v for v in json.loads((run_dir / "verdicts.json").read_text())["verdicts"]}
    latency = [v for v in verdicts.values() if v["metric"] in ("p50_ms", "p95_ms", "p99_ms")]
    assert latency and all(v["verdict"] == "INCONCLUSIVE" for v in latency), latency
    assert any("did not stop cleanly" in (v["reason"] or "") or "records lost" in (v["reason"] or "")
               for v in latency), latency  # fmt: skip
    assert SandboxTarget(sandbox_env).whole(), sandbox_env.status()
    assert _generators(run_dir) == []
