"""Run Locust as a subprocess of the engine, and judge whether the generator kept up.

The engine never imports Locust (its gevent monkey-patching must not reach it): ``start_load``
launches ``python -m locust`` headless, in a process group of its own, with a locustfile and a
profile; every request is recorded into the run directory (``drillbit.load.recorder``) while a
thread samples the generator processes' CPU. ``LoadRun.stop()`` (or ``wait()``) ends it (SIGTERM
so Locust flushes its records, SIGKILL to the whole group after a grace period: nothing is left
behind) and writes ``load.json``: intended vs achieved rate, how late requests left, the
generator's CPU, and whether it was *saturated*, in which case latency figures measure the
generator, not the server, and a verdict must be INCONCLUSIVE.

Saturated, with a reason for each, when any of:
  - CPU: a generator process was busy >= 90 % of the time while the schedule ran (on a CPU, or
    runnable and waiting for one: see ``drillbit.load.cpu``), judged per process and naming the
    busiest; a remote worker (``drill worker``) counts too, from the figures it sends the master
    with its records (``drillbit.load.transit``; ``samples/harness_remote.parquet``);
  - generator lateness: the open model's requests left the generator late for its own reasons
    (p99 above ``late_after``; waits for the in-flight cap, which is the server's doing, are
    excluded; see ``drillbit.load.recording``);
  - the intended rate was not reached: fewer than 95 % of the requests the profile schedules up to
    the stop were sent, unless the in-flight cap held the schedule back (server backpressure)
    while the generator had CPU to spare.
Server backpressure is reported in ``notes``: those requests keep their intended time, so the
corrected latency already charges the server for them. A generator process that left no schedule
record (killed) makes the result ``complete: false``.

The harness's own processes are sampled while the load runs (every ``cpu_interval``): the drill
process itself (engine and probes), the Locust master or lone generator and each local worker,
resident memory and CPU, written to ``samples/harness.parquet`` when the load ends (a soak's memory
drift: ``drillbit.probes.drift``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Hashable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from drillbit.core.clock import Clock
from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.core.project import current as current_project
from drillbit.core.rundir import (
    HARNESS,
    HARNESS_REMOTE,
    HARNESS_SCHEMA,
    LOAD_META,
    REQUESTS_DIR,
    read_transit,
    request_parts,
)
from drillbit.load.cpu import CpuSample, CpuSampler, busiest_process, harness_table
from drillbit.load.profiles import Profile, load_profile, resolve_profile
from drillbit.load.recording import LATENESS_EDGES_S, lateness_quantile, merge_lateness

__all__ = [
    "CPU_SATURATED",
    "RATE_MIN",
    "LoadResult",
    "LoadRun",
    "find_locustfile",
    "remote_cpu",
    "run_load",
    "start_load",
    "summarize",
    "write_harness",
    "write_load_meta",
]

log = logging.getLogger(__name__)

#: percent of one core at which a generator process counts as CPU-bound
CPU_SATURATED = 90.0
#: fraction of the intended rate below which the intended rate was "not reached"
RATE_MIN = 0.95


@dataclass(frozen=True)
class LoadResult:
    """What load.json holds: the generator's own account of the load it applied."""

    profile: str
    model: str
    locustfile: str
    host: str
    processes: int
    started_at: float  # epoch s (drill clock)
    ended_at: float
    duration_s: float  # the schedule's span (open model) or first to last send (closed)
    due: int  # open model: requests the schedule made due before it ended or was stopped
    expected: float | None  # open model: what the profile schedules over that span (all processes)
    sent: int
    recorded: int  # rows in requests/*.parquet (answered, failed, not sent, abandoned)
    not_sent: int
    abandoned: int
    capped: int  # requests that waited for the in-flight cap (server backpressure)
    cap_wait_s: float
    intended_rps: float | None
    achieved_rps: float  # requests sent per second
    send_lateness_p50_ms: float | None  # sent - intended: generator lateness plus waits for the cap
    send_lateness_p99_ms: float | None
    generator_lateness_p50_ms: float | None  # bucket upper bounds, cap waits excluded
    generator_lateness_p99_ms: float | None
    generator_lateness_max_ms: float | None
    cpu_samples: dict[str, list[list[float]]]  # per generator pid: [t, cpu_percent, busy_percent] every interval
    cpu_percent_busiest: float  # the busiest process's median percent of a core, while the schedule ran
    busy_percent_busiest: float  # ... counting the time it waited for a CPU too (see drillbit.load.cpu)
    saturated: bool
    reason: str | None  # the reasons, joined
    reasons: list[str] = field(default_factory=list)
    complete: bool = True  # every generator process left its schedule record (stopped cleanly)
    notes: list[str] = field(default_factory=list)
    exit_code: int | None = None
    busiest_process: str | None = None  # the generator process the busiest figures are of (local or remote)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadRun:
    """A running Locust subprocess with a CPU sampler of its processes, and one of the drill process itself
    (``harness``); ``stop``/``wait`` return the LoadResult. ``root_role``: what Locust's own process is
    (``master`` of workers, or the lone ``generator``)."""

    def __init__(self, proc: subprocess.Popen[bytes], profile: Profile, run_dir: Path, *, processes: int,
                 late_after: float, locustfile: str, host: str, clock: Clock, cpu_interval: float,
                 root_role: str = "generator") -> None:  # fmt: skip
        self.proc, self.profile, self.run_dir, self.processes = proc, profile, run_dir, processes
        self.late_after, self.locustfile, self.host, self.clock = late_after, locustfile, host, clock
        self.root_role = root_role
        self.started_at = clock.now()
        self.result: LoadResult | None = None
        self.cpu = CpuSampler(proc.pid, clock.now, cpu_interval).start()
        self.harness = CpuSampler(os.getpid(), clock.now, cpu_interval, descendants=False).start()

    def role(self, pid: int) -> str:
        """A generator process's role: Locust's own process, or one of its workers."""
        return self.root_role if pid == self.proc.pid else "worker"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Wait for the profile to end (stop it after ``timeout`` seconds)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("load did not finish in %s s: stopping it", timeout)
            return self.stop()
        return self._finish()

    def stop(self, grace: float | None = None) -> LoadResult:
        """End the load now: SIGTERM (Locust drains and flushes its records), SIGKILL after ``grace``."""
        if self.result is not None:
            return self.result
        self.cpu.family()  # remember the workers before the master goes
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace if grace is not None else self._grace())
            except subprocess.TimeoutExpired:
                log.warning("Locust did not stop on SIGTERM: killing its process group")
                _kill_group(self.proc.pid)
                self.proc.wait(10)
        return self._finish()

    def _grace(self) -> float:
        return self.profile.timeout_s + 15

    def _reap(self) -> None:
        """Wait for the workers to flush and exit after their master, then kill whatever is left."""
        others = [p for p in self.cpu.members() if p.pid != self.proc.pid]
        _, alive = psutil.wait_procs(others, timeout=self._grace())
        if alive:
            log.warning("killing %d generator processes that outlived their master", len(alive))
        _kill_group(self.proc.pid)
        psutil.wait_procs(alive, timeout=5)

    def _finish(self) -> LoadResult:
        if self.result is not None:
            return self.result
        self.cpu.stop()
        self.harness.stop()
        self._reap()
        self.result = summarize(
            self.run_dir, self.profile, processes=self.processes, cpu=self.cpu.samples, late_after=self.late_after,
            exit_code=self.proc.returncode, locustfile=self.locustfile, host=self.host,
            started_at=self.started_at, ended_at=self.clock.now(),
            roles={pid: self.role(pid) for pid in self.cpu.samples},
        )  # fmt: skip
        write_load_meta(self.run_dir, self.result)
        host = socket.gethostname()
        write_harness(self.run_dir, pa.concat_tables([harness_table(self.harness, lambda _pid: "drill", host),
                                                      harness_table(self.cpu, self.role, host)]))  # fmt: skip
        if self.result.saturated:
            log.warning("load generator saturated: %s", self.result.reason)
        if self.result.recorded == 0 and self.proc.returncode not in (0, None):
            raise EnvironmentFailure(
                f"Locust exited with code {self.proc.returncode} without recording a request: "
                f"{_last_line(self.run_dir / 'locust.log')} (see {self.run_dir / 'locust.log'})"
            )
        return self.result

    def __enter__(self) -> LoadRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "empty log"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return  # the group is gone already
    except PermissionError as err:
        log.warning("cannot kill process group %d: %s", pgid, err)


def write_harness(run_dir: Path, table: pa.Table) -> Path:
    """``samples/harness.parquet`` (``HARNESS_SCHEMA``), replaced whole and atomically."""
    path = Path(run_dir) / HARNESS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table.cast(HARNESS_SCHEMA), tmp)
    os.replace(tmp, path)
    return path


def remote_cpu(run_dir: Path, skip: Collection[tuple[str, int]] = ()) -> dict[str, list[CpuSample]]:
    """Remote workers' CPU figures (``samples/harness_remote.parquet``, from the figures each sent the master),
    keyed by a name that says which worker: ``remote worker N (pid P on HOST)``. ``skip``: (host, pid) of
    processes the drill sampled itself (a local worker sending its records through the master)."""
    path = Path(run_dir) / HARNESS_REMOTE
    if not path.is_file():
        return {}
    rows = pq.read_table(path, columns=["t", "worker", "pid", "host", "cpu_percent", "busy_percent"]).to_pylist()
    out: dict[str, list[CpuSample]] = {}
    last: dict[str, float] = {}
    for r in sorted(rows, key=lambda r: (r["worker"], r["pid"], r["t"])):
        if (r["host"], r["pid"]) in skip:
            continue
        name = f"remote worker {r['worker']} (pid {r['pid']} on {r['host']})"
        before = last.get(name)
        if before is None or math.isfinite(r["cpu_percent"]):
            last[name] = r["t"]  # the base of the next interval (figures too close to it have no share)
        if before is None or not math.isfinite(r["cpu_percent"]):
            continue  # a process's first figures, or too close to the previous: no interval
        out.setdefault(name, []).append(CpuSample(r["t"], r["cpu_percent"], r["busy_percent"], r["t"] - before))
    return out


def write_load_meta(run_dir: Path, result: LoadResult) -> Path:
    path = Path(run_dir) / LOAD_META
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False, default=_no_nan))
    os.replace(tmp, path)
    return path


def _no_nan(value: object) -> object:
    raise TypeError(f"not JSON serializable: {value!r}")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or not math.isfinite(seconds) else seconds * 1000


def _send_lateness(files: list[Path]) -> tuple[int, np.ndarray]:
    """Row count, and sent - intended of every sent open-model request (read column-wise, batch by batch)."""
    rows, parts = 0, []
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1 << 20, columns=["intended", "start"]):
            rows += batch.num_rows
            intended = batch.column(0).to_numpy(zero_copy_only=False)
            start = batch.column(1).to_numpy(zero_copy_only=False)
            late = start - intended
            parts.append(late[~np.isnan(late)])
    return rows, (np.concatenate(parts) if parts else np.array([], dtype=float))


def _window(metas: list[dict[str, Any]]) -> tuple[float, float] | None:
    """When the open-model schedule ran (epoch s): CPU samples outside it are start-up or shut-down."""
    spans = [(float(m["t0"]), float(m["t_end"])) for m in metas if m.get("t0") is not None and m.get("t_end")]
    return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None


def summarize(
    run_dir: Path,
    profile: Profile,
    *,
    processes: int = 1,
    cpu: dict[int, list[CpuSample]] | None = None,
    late_after: float = 0.05,
    exit_code: int | None = None,
    locustfile: str = "",
    host: str = "",
    started_at: float = math.nan,
    ended_at: float = math.nan,
    roles: Mapping[int, str] | None = None,
) -> LoadResult:
    """Read what the generator processes recorded and judge saturation (pure: no process is touched).

    ``cpu``: the local generator processes' CPU samples by pid (``roles``: what each is, for the reason's
    wording); remote workers' come from the run directory (``remote_cpu``)."""
    req_dir = Path(run_dir) / REQUESTS_DIR
    metas = [json.loads(p.read_text()) for p in sorted(req_dir.glob("worker-*.json"))] if req_dir.exists() else []
    files, unreadable = request_parts(run_dir)
    recorded, late = _send_lateness(files)
    reasons: list[str] = []
    notes = [f"{f.name} is unreadable (its process was killed before closing it)" for f in unreadable]
    sent = sum(int(m.get("sent", 0)) for m in metas)
    not_sent = sum(int(m.get("not_sent", 0)) for m in metas)
    abandoned = sum(int(m.get("abandoned", 0)) for m in metas)
    capped = sum(int(m.get("capped", 0)) for m in metas)
    cap_wait = sum(float(m.get("cap_wait_s", 0.0)) for m in metas)
    samples = cpu or {}
    local_host = socket.gethostname()
    remote = remote_cpu(run_dir, {(local_host, pid) for pid in samples})
    window = _window(metas) if profile.model == "open" else None
    judged: dict[Hashable, list[CpuSample]] = {pid: series for pid, series in samples.items()}
    for name, series in remote.items():
        judged[name] = series
    top = busiest_process(judged, window)
    busy, on_cpu = top.busy_percent, top.cpu_percent
    top_name = _process_name(top.process, roles or {})
    cpu_bound = busy >= CPU_SATURATED
    if cpu_bound:
        reasons.append(f"generator CPU-bound: {top_name or 'a generator process'} was busy {busy:.0f} % of the time "
                       f"(median; {on_cpu:.0f} % on a CPU, the rest waiting for one)")  # fmt: skip
    complete = not unreadable
    expected: float | None = None
    intended_rps: float | None = None
    if profile.model == "open":
        due = sent + not_sent
        if len(metas) < processes:
            complete = False
            notes.append(f"{processes - len(metas)} of {processes} generator processes left no schedule record "
                         "(killed before a clean stop?): their requests may be missing")  # fmt: skip
        spans = [(float(m["t0"]), float(m["t_end"]), float(m.get("share", 1.0)))
                 for m in metas if m.get("t0") is not None and m.get("t_end") is not None]  # fmt: skip
        # the schedule's span (what the profile asked for), and how long sending took (longer when behind)
        scheduled_s = max((min(e - s, profile.duration) for s, e, _ in spans), default=0.0)
        duration = max((e - s for s, e, _ in spans), default=0.0)
        expected = sum(profile.scheduled(e - s) * share for s, e, share in spans)
        intended_rps = due / scheduled_s if scheduled_s > 0 else None
        achieved_rps = sent / duration if duration > 0 else 0.0
        # Poisson arrivals scatter around the expectation: allow three standard deviations
        slack = max((1 - RATE_MIN) * expected, 3 * math.sqrt(expected) if profile.arrival == "poisson" else 0.0)
        if expected > 0 and sent < expected - slack:
            text = (f"intended rate not reached: sent {sent} of {expected:.0f} scheduled "
                    f"({achieved_rps:.0f} of {expected / scheduled_s:.0f} req/s)")  # fmt: skip
            # the cap held the schedule back: the server was slow, unless the generator was too busy to read answers
            backpressure = not cpu_bound and cap_wait / max(len(spans), 1) > (1 - RATE_MIN) * duration
            if backpressure:
                notes.append(text + f": the server held the in-flight cap for {cap_wait:.1f} s (backpressure)")
            else:
                reasons.append(text)
    else:
        due = sent = recorded
        starts = _column(files, "start")
        duration = float(np.nanmax(starts) - np.nanmin(starts)) if starts.size > 1 else 0.0
        achieved_rps = sent / duration if duration > 0 else 0.0
    transit = read_transit(run_dir)
    unsampled = [k for k, w in ((transit or {}).get("workers") or {}).items()
                 if isinstance(w, dict) and not w.get("process_samples")]  # fmt: skip
    if unsampled:
        notes.append(f"remote worker(s) {', '.join(unsampled)} sent no CPU or memory figures (an older drillbit?): "
                     "their saturation was not judged")  # fmt: skip
    if transit is not None and (transit.get("rows_lost") or transit.get("unaccounted_workers")):
        complete = False
        silent = transit.get("unaccounted_workers") or []
        notes.append(f"records lost in transit from remote workers: {transit.get('rows_lost') or 0} sent and never "
                     "received" + (f"; worker(s) {', '.join(silent)} never said what they sent" if silent else ""))
    if capped:
        notes.append(f"{capped} requests waited for the in-flight cap ({cap_wait:.1f} s in all): they keep their "
                     "intended time")  # fmt: skip
    if not_sent:
        notes.append(f"{not_sent} requests were due but not sent when the load stopped (recorded as not_sent)")
    if abandoned:
        notes.append(f"{abandoned} requests were still in flight when the load stopped (recorded as abandoned)")

    hist = merge_lateness(metas)
    gen_p50, gen_p99 = lateness_quantile(hist, 0.50), lateness_quantile(hist, 0.99)
    gen_max = max((float(m.get("lateness_max_s", 0.0)) for m in metas), default=None)
    if gen_p99 is not None and gen_p99 > late_after:
        lower = max((e for e in LATENESS_EDGES_S if e < gen_p99), default=0.0)
        reasons.append(f"generator lateness: p99 {lower * 1000:g}-{gen_p99 * 1000:g} ms behind schedule for the "
                       f"generator's own reasons, not the server's (limit {late_after * 1000:g} ms)")  # fmt: skip
    if exit_code not in (None, 0):
        notes.append(f"Locust exited with code {exit_code} (see locust.log)")

    return LoadResult(
        profile=profile.name, model=profile.model, locustfile=locustfile, host=host, processes=processes,
        started_at=started_at, ended_at=ended_at, duration_s=duration,
        due=due, expected=expected, sent=sent, recorded=recorded,
        not_sent=not_sent, abandoned=abandoned, capped=capped, cap_wait_s=cap_wait,
        intended_rps=intended_rps, achieved_rps=achieved_rps,
        send_lateness_p50_ms=float(np.percentile(late, 50)) * 1000 if late.size else None,
        send_lateness_p99_ms=float(np.percentile(late, 99)) * 1000 if late.size else None,
        generator_lateness_p50_ms=_ms(gen_p50), generator_lateness_p99_ms=_ms(gen_p99),
        generator_lateness_max_ms=_ms(gen_max),
        cpu_samples={str(key): [x.row() for x in series] for key, series in judged.items()},
        cpu_percent_busiest=on_cpu, busy_percent_busiest=busy,
        saturated=bool(reasons), reason="; ".join(reasons) or None, reasons=reasons,
        complete=complete, notes=notes, exit_code=exit_code, busiest_process=top_name,
    )  # fmt: skip


def _process_name(key: Hashable | None, roles: Mapping[int, str]) -> str | None:
    """A sampled generator process in words: ``worker (pid 4242)``; a remote worker's key is its name already."""
    if key is None or isinstance(key, str):
        return key
    return f"{roles.get(key, 'generator process') if isinstance(key, int) else 'generator process'} (pid {key})"


def _column(files: list[Path], name: str) -> np.ndarray:
    parts = [pq.read_table(f, columns=[name])[name].to_numpy() for f in files]
    return np.concatenate(parts) if parts else np.array([], dtype=float)


def find_locustfile(locustfile: str | Path) -> Path:
    """A path to a locustfile, or the name of one in the project's ``loadtests/``."""
    lf = Path(locustfile)
    if lf.exists():
        return lf
    project = current_project()
    named = project.find("loadtests", f"{locustfile}.py")
    if named.exists():
        return named
    names = project.names("loadtests", ".py")
    known = ", ".join(n for n in names if _is_locustfile(project.find("loadtests", f"{n}.py")))
    raise ConfigError(str(locustfile), f"no such locustfile: use one of {known} or a path to a locustfile")


def _is_locustfile(path: Path) -> bool:
    return "import drillbit.load.recorder" in path.read_text(encoding="utf-8")


def _free_loopback_port() -> int:
    """A port free on 127.0.0.1 now (the kernel's pick; Locust binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_load(
    locustfile: str | Path,
    profile: str | Path,
    host: str,
    run_dir: str | Path,
    *,
    processes: int = 1,
    late_after: float = 0.05,
    cpu_affinity: list[int] | None = None,
    cpu_interval: float = 1.0,
    clock: Clock | None = None,
    extra_args: list[str] | None = None,
    records_via: str = "files",
    master_bind: tuple[str, int] | None = None,
) -> LoadRun:
    """Start Locust headless in the background: ``profile`` against ``host``, recording into ``run_dir``.

    ``locustfile`` is a path or a shipped name (trader, marketdata, ping); ``processes`` > 1 runs
    Locust's master with that many worker processes sharing the rate; ``cpu_affinity`` pins the
    generator to those CPUs. ``clock``: the run's (default: the one handed down in ``DRILL_CLOCK``);
    Locust and its workers get its anchor, so their records line up with the drill's events.

    ``records_via="master"``: the workers send their records to the master in Locust messages
    (``drillbit.load.transit``), as workers on other machines must. ``master_bind`` (host, port): no
    local workers; the master waits for ``processes`` workers to connect there (``drill worker``),
    and their records come that way.
    """
    clock = clock or Clock.from_env()
    prof = load_profile(profile)
    lf = find_locustfile(locustfile)
    if not host.startswith(("http://", "https://")):
        raise ConfigError("host", f"{host!r} is not an http(s) URL: pass e.g. http://127.0.0.1:8080")
    if processes < 1:
        raise ConfigError("processes", "must be >= 1")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(lf), "--headless", "--host", host,
        "--drill-run-dir", str(run), "--drill-profile", str(resolve_profile(profile).resolve()),
        "--drill-workers", str(processes), "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0", "--stop-timeout", str(math.ceil(prof.timeout_s) + 2),
    ]  # fmt: skip
    if master_bind is not None:
        records_via = "master"
        cmd += ["--master", "--expect-workers", str(processes), "--master-bind-host", master_bind[0],
                "--master-bind-port", str(master_bind[1])]  # fmt: skip
    elif processes > 1:
        # Locust's master binds every interface on 5557 by default: a second drill on the host (or
        # anything else there) then kills this one with "Address already in use"; the master and its
        # forked workers talk over loopback, on a port of their own
        port = _free_loopback_port()
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                "--master-host", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    if records_via not in ("files", "master"):
        raise ConfigError("records_via", f"{records_via!r}: use files or master")
    cmd += ["--drill-records-via", records_via]
    cmd += extra_args or []
    out = open(run / "locust.log", "ab")  # noqa: SIM115  (handed to the child, closed below)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **clock.to_env()})  # fmt: skip
    except OSError as err:
        raise EnvironmentFailure(f"cannot start Locust: {err}") from err
    finally:
        out.close()
    if cpu_affinity:
        try:
            os.sched_setaffinity(proc.pid, cpu_affinity)  # before Locust forks any worker: they inherit it
        except OSError as err:
            _kill_group(proc.pid)
            proc.wait(10)
            raise ConfigError("cpu_affinity", f"cannot pin the generator to CPUs {cpu_affinity}: {err}") from err
    log.info("load started: %s, profile %s, %d process(es), pid %d", lf.name, prof.name, processes, proc.pid)
    return LoadRun(proc, prof, run, processes=processes, late_after=late_after, locustfile=str(lf), host=host,
                   clock=clock, cpu_interval=cpu_interval,
                   root_role="master" if master_bind is not None or processes > 1 else "generator")  # fmt: skip


def run_load(
    locustfile: str | Path,
    profile: str | Path,
    host: str,
    run_dir: str | Path,
    *,
    processes: int = 1,
    timeout: float | None = None,
    **options: Any,
) -> LoadResult:
    """Run a profile to its end and return the judged result (also written to ``<run_dir>/load.json``)."""
    prof = load_profile(profile)
    run = start_load(locustfile, profile, host, run_dir, processes=processes, **options)
    deadline = time.monotonic() + (timeout if timeout is not None else prof.duration + prof.timeout_s + 60)
    try:
        return run.wait(max(0.0, deadline - time.monotonic()))
    finally:
        run.stop()
