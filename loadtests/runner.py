"""Run Locust as a subprocess of the engine, and judge whether the generator kept up.

The engine never imports Locust (its gevent monkey-patching must not reach it): ``start_load``
launches ``python -m locust`` headless with a locustfile and a profile, records every request
into the run directory, and samples the generator processes' CPU. ``LoadRun.stop()`` (or
``wait()``) ends it and writes ``load.json``: intended vs achieved rate, how late requests left
the generator, its CPU, and whether it was *saturated*, in which case latency figures measure the
generator, not the server, and a verdict must be INCONCLUSIVE.

Saturated when either: the open model sent fewer than 95 % of the requests its profile
schedules; or requests left late (p99 send lateness above ``late_after``) while a generator
process ran at >= 90 % of a core. Lateness with an idle generator is the server's backpressure
(the in-flight cap was reached), not saturation: those requests keep their intended time.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow.dataset as ds

from drillbit.rundir import LOAD_META, REQUESTS_DIR
from loadtests.profiles import Profile, load_profile, resolve_profile

__all__ = ["LoadResult", "LoadRun", "run_load", "start_load"]

log = logging.getLogger(__name__)

LOCUSTFILES = Path(__file__).resolve().parent
CPU_SATURATED = 90.0
SENT_RATIO_MIN = 0.95


@dataclass(frozen=True)
class LoadResult:
    profile: str
    model: str
    processes: int
    duration_s: float
    scheduled: int  # open model: requests the schedule asked for
    sent: int
    capped: int  # times the in-flight cap made the schedule wait (server backpressure)
    intended_rps: float | None
    achieved_rps: float
    lateness_p50_ms: float | None  # send time - intended time
    lateness_p99_ms: float | None
    cpu_percent_max: float  # the busiest generator process, percent of one core
    cpu_percent_mean: float
    saturated: bool
    reasons: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadRun:
    """A running Locust subprocess with a CPU sampler; ``stop``/``wait`` return a LoadResult."""

    def __init__(self, proc: subprocess.Popen[bytes], profile: Profile, run_dir: Path, processes: int,
                 late_after: float) -> None:  # fmt: skip
        self.proc, self.profile, self.run_dir, self.processes = proc, profile, run_dir, processes
        self.late_after = late_after
        self.started = time.monotonic()
        self.cpu: dict[int, list[float]] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_cpu, name="generator-cpu", daemon=True)
        self._sampler.start()

    def _sample_cpu(self) -> None:
        tracked: dict[int, psutil.Process] = {}
        while not self._stop.wait(1.0):
            try:
                root = psutil.Process(self.proc.pid)
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in family:
                if p.pid not in tracked:
                    tracked[p.pid] = p
                    p.cpu_percent(None)  # prime
                    continue
                try:
                    self.cpu.setdefault(p.pid, []).append(tracked[p.pid].cpu_percent(None))
                except psutil.NoSuchProcess:
                    continue

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> LoadResult:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        return self._finish()

    def stop(self, grace: float = 10.0) -> LoadResult:
        """End the load now (SIGTERM lets Locust flush its recorders), SIGKILL after ``grace``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                for p in _family(self.proc.pid):
                    p.kill()
                self.proc.wait(5)
        return self._finish()

    def _finish(self) -> LoadResult:
        self._stop.set()
        self._sampler.join()
        for p in _family(self.proc.pid):  # --processes workers must not outlive their master
            p.kill()
        result = summarize(self.run_dir, self.profile, self.processes, time.monotonic() - self.started,
                           self.cpu, self.late_after, self.proc.returncode)  # fmt: skip
        (self.run_dir / LOAD_META).write_text(json.dumps(result.to_dict(), indent=2))
        return result


def _family(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def summarize(run_dir: Path, profile: Profile, processes: int, wall_s: float, cpu: dict[int, list[float]],
              late_after: float, exit_code: int | None) -> LoadResult:  # fmt: skip
    """Read what the workers recorded and judge saturation."""
    req_dir = run_dir / REQUESTS_DIR
    metas = [json.loads(p.read_text()) for p in sorted(req_dir.glob("worker-*.json"))] if req_dir.exists() else []
    # what the profile asked for, not what the workers got round to scheduling before the end
    scheduled = round(profile.scheduled())
    capped = int(sum(m.get("capped", 0) for m in metas))
    files = sorted(req_dir.glob("*.parquet")) if req_dir.exists() else []
    if files:
        t = ds.dataset(files, format="parquet").to_table(columns=["intended", "start"])
        intended = t["intended"].to_numpy(zero_copy_only=False)
        start = t["start"].to_numpy(zero_copy_only=False)
    else:
        intended = start = np.array([], dtype=float)
    sent = len(start)
    has_intended = ~np.isnan(intended)
    late = (start - intended)[has_intended]
    duration = float(np.nanmax(start) - np.nanmin(start)) if sent > 1 else wall_s  # first to last send
    intended_rps = scheduled / profile.duration if profile.model == "open" else None
    achieved_rps = sent / duration if duration > 0 else 0.0
    all_cpu = [c for series in cpu.values() for c in series]
    per_proc_max = [max(series) for series in cpu.values() if series]
    reasons = []
    if intended_rps and (sent < SENT_RATIO_MIN * scheduled or achieved_rps < SENT_RATIO_MIN * intended_rps):
        reasons.append(
            f"intended rate not reached: {achieved_rps:.0f} of {intended_rps:.0f} req/s ({sent} of {scheduled} sent)"
        )
    lateness_p99 = float(np.percentile(late, 99)) if late.size else None
    busiest = max(per_proc_max, default=0.0)
    if lateness_p99 is not None and lateness_p99 > late_after and busiest >= CPU_SATURATED:
        reasons.append(f"generator CPU-bound: p99 send lateness {lateness_p99 * 1000:.0f} ms at {busiest:.0f} % CPU")
    if profile.model == "closed" and busiest >= CPU_SATURATED:
        reasons.append(f"generator CPU near 100 % ({busiest:.0f} % of a core)")
    return LoadResult(
        profile=profile.name, model=profile.model, processes=processes, duration_s=duration,
        scheduled=scheduled, sent=sent, capped=capped,
        intended_rps=intended_rps, achieved_rps=achieved_rps,
        lateness_p50_ms=float(np.percentile(late, 50)) * 1000 if late.size else None,
        lateness_p99_ms=lateness_p99 * 1000 if lateness_p99 is not None else None,
        cpu_percent_max=busiest, cpu_percent_mean=float(np.mean(all_cpu)) if all_cpu else 0.0,
        saturated=bool(reasons), reasons=reasons, exit_code=exit_code,
    )  # fmt: skip


def start_load(
    locustfile: str | Path,
    profile: str | Path,
    host: str,
    run_dir: str | Path,
    *,
    processes: int = 1,
    late_after: float = 0.05,
    log_file: Path | None = None,
) -> LoadRun:
    """Start Locust headless in the background on ``profile`` against ``host``."""
    prof = load_profile(profile)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    lf = Path(locustfile)
    if not lf.exists():
        lf = LOCUSTFILES / f"{locustfile}.py"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(lf), "--headless", "--host", host,
        "--drill-run-dir", str(run), "--drill-profile", str(resolve_profile(profile)),
        "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "5",
    ]  # fmt: skip
    if processes > 1:
        cmd += ["--processes", str(processes)]
    env = {**os.environ, "DRILL_WORKERS": str(processes)}
    out = open(log_file or run / "locust.log", "ab")  # noqa: SIM115  (handed to the child)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    finally:
        out.close()
    return LoadRun(proc, prof, run, processes, late_after)


def run_load(locustfile: str | Path, profile: str | Path, host: str, run_dir: str | Path, *, processes: int = 1,
             timeout: float | None = None) -> LoadResult:  # fmt: skip
    """Run a profile to its end and return the judged result."""
    prof = load_profile(profile)
    run = start_load(locustfile, profile, host, run_dir, processes=processes)
    return run.wait(timeout if timeout is not None else prof.duration + prof.timeout_s + 60)
