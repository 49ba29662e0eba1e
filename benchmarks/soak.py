"""Soak: the harness's own memory slope per process against a flat-memory target, and the latency's drift.

    python -m benchmarks.soak [--minutes 60] [--workers 1] [--state-dir DIR] [--out runs]
    python -m benchmarks.soak --run runs/<id>-soak     # the figures of a soak already run

Target (issue 19): over a 1 h soak every harness process (the drill process itself, the Locust master or
lone generator, each worker) grows less than 1 MB/min. `drill observe --profile soak` runs on the sandbox
(brought up in a state directory of its own and down again; with --state-dir, a sandbox already up there
is used and left up) for --minutes (the soak profile stretched when longer than its hour); then the run
directory's drift (drillbit.probes.drift): each process's resident-memory slope (least squares after the
warm-up) against 1 MB/min, and the p95's drift per window (ms per 10 min, last window / first) against
the soak profile's latency_drift SLA. A run under 10 min is measured but too short to judge: it prints
its figures and says so, never a pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drillbit.core.yamlio import load_document
from drillbit.load.profiles import load_profile, resolve_profile
from drillbit.probes.drift import MEMORY_SLOPE_METRIC, P95_RATIO_METRIC, DriftReading, analyze_drift, drift_reading
from drillbit.sla import load_sla_file
from drillbit.targets import env_down, env_up, is_up

__all__ = ["MEMORY_TARGET_MB_MIN", "main"]

ROOT = Path(__file__).resolve().parents[1]
#: issue 19: a flat-memory harness grows less than this per process over an hour's soak
MEMORY_TARGET_MB_MIN = 1.0


def _profile(minutes: float, tmp: Path) -> str:
    """The soak profile, or (longer than it lasts) a copy of it stretched to ``minutes``: still named soak."""
    shipped = load_profile("soak")
    if minutes * 60 <= shipped.duration:
        return "soak"
    doc = load_document(resolve_profile("soak"), missing="no soak profile in the project")
    doc["stages"][-1]["duration"] += minutes * 60 - shipped.duration
    path = tmp / "soak.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return str(path)


def _observe(minutes: float, workers: int, state: Path, out: Path, profile: str) -> Path:
    """`drill observe` in a process of its own (the drill process the soak samples is exactly that)."""
    before = set(out.glob("*-soak")) if out.exists() else set()
    cmd = [sys.executable, "-m", "drillbit.cli", "observe", "--env", "sandbox", "--state-dir", str(state),
           "--profile", profile, "--workers", str(workers), "--duration", f"{minutes * 60:g}s", "--name", "soak",
           "--out", str(out), "--plain"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, timeout=minutes * 60 + 600, check=False)
    if done.returncode not in (0, 1, 3):  # 3: no fault was injected or marked (an observation without one)
        raise SystemExit(f"benchmarks.soak: drill observe exited {done.returncode}")
    made = sorted(set(out.glob("*-soak")) - before)
    if not made:
        raise SystemExit(f"benchmarks.soak: drill observe left no run directory in {out}")
    return made[-1]


def _verdict(reading: DriftReading, target: float) -> str:
    if reading.value is None:
        return f"INCONCLUSIVE ({reading.why})"
    if not reading.value < target:
        return "FAIL"
    return f"INCONCLUSIVE ({reading.doubt})" if reading.doubt else "PASS"


def report(run_dir: Path) -> None:
    """Print the soak's figures from its run directory."""
    m = analyze_drift(run_dir)
    load = json.loads((run_dir / "load.json").read_text()) if (run_dir / "load.json").exists() else {}
    print(f"run directory: {run_dir}")
    short = f"; TOO SHORT TO JUDGE: {m.too_short}" if m.too_short else ""
    print(f"soak: {m.span_s / 60:.1f} min of load ({m.span_from}); warm-up {m.warmup_s:.0f} s left out, "
          f"{m.judged_s / 60:.1f} min judged{short}")  # fmt: skip
    print(f"generator: {load.get('achieved_rps') or 0:.1f} of {load.get('intended_rps') or 0:.1f} req/s; "
          f"saturated: {'yes: ' + str(load.get('reason')) if load.get('saturated') else 'no'}")  # fmt: skip
    print(f"memory slope per harness process (least squares; target < {MEMORY_TARGET_MB_MIN:g} MB/min each):")
    for p in m.processes:
        if p.slope_mb_per_min is None:
            print(f"  {p.name:44s} too few samples ({p.samples})")
            continue
        band = 2 * (p.slope_stderr_mb_per_min or 0.0)
        print(f"  {p.name:44s} {p.slope_mb_per_min:+8.3f} ± {band:.3f} MB/min  RSS {p.rss_first_mb:7.1f} -> "
              f"{p.rss_last_mb:7.1f} MB (peak {p.rss_peak_mb:.1f}), R² {p.r2 if p.r2 is None else f'{p.r2:.2f}'}, "
              f"{p.slope_mb_per_min / MEMORY_TARGET_MB_MIN:.2f} of the target")  # fmt: skip
    memory = drift_reading(m, MEMORY_SLOPE_METRIC, "<", MEMORY_TARGET_MB_MIN)
    print(f"  steepest: {m.worst_process} -> {_verdict(memory, MEMORY_TARGET_MB_MIN)}")
    lat = m.latency
    if lat is None:
        print(f"latency drift: not measured ({m.latency_problem})")
        return
    windows = [w for w in lat.windows if w.p95_ms is not None]
    sla = load_sla_file().slas["latency_drift"]
    ratio = drift_reading(m, P95_RATIO_METRIC, sla.op, sla.target)
    print(f"latency per {lat.window_s:.0f} s window ({len(windows)} windows): p95 first {windows[0].p95_ms:.1f} ms, "
          f"last {windows[-1].p95_ms:.1f} ms -> ratio {lat.p95_ratio or 0:.2f}x (target {sla.op} {sla.target:g}x: "
          f"{_verdict(ratio, sla.target)}); p95 slope {lat.p95_slope_ms_per_10min or 0:+.2f} ms per 10 min "
          f"(R² {lat.p95_r2 or 0:.2f}); p50 {windows[0].p50_ms:.1f} -> {windows[-1].p50_ms:.1f} ms, slope "
          f"{lat.p50_slope_ms_per_10min or 0:+.2f} ms per 10 min")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="how long the soak runs (default 60)")
    ap.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    ap.add_argument("--state-dir", type=Path, default=None, help="a sandbox's state directory (default: a new one)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs", help="where the run directory goes (kept)")
    ap.add_argument("--run", type=Path, default=None, help="print the figures of this soak run directory, run nothing")
    args = ap.parse_args(argv)
    if args.run is not None:
        report(args.run)
        return
    if args.minutes <= 0:
        raise SystemExit("benchmarks.soak: --minutes must be positive")
    with tempfile.TemporaryDirectory(prefix="drillbit-soak-") as d:
        tmp = Path(d)
        state = args.state_dir or tmp / ".drill"
        was_up = args.state_dir is not None and is_up("sandbox", state_dir=state)
        if not was_up:
            started = time.monotonic()
            env_up("sandbox", state_dir=state, report=lambda _m: None)
            print(f"sandbox up in {time.monotonic() - started:.1f} s ({state})", flush=True)
        try:
            run_dir = _observe(args.minutes, args.workers, state, args.out, _profile(args.minutes, tmp))
        finally:
            if not was_up:
                env_down("sandbox", state_dir=state, report=lambda _m: None)
    report(run_dir)


if __name__ == "__main__":
    main()
