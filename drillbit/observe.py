"""``drill observe``: measure a drill that people (or another tool) carry out; drillbit injects nothing.

The same samplers, optional load, analysis, verdicts and reports as ``drill run`` (shared through
``drillbit.session`` and ``drillbit.runs``); what differs is where the fault time comes from:

- a ``mark`` event of kind ``fault`` (``drill mark LABEL --kind fault`` from another terminal,
  or the ``f`` key in the live view): the operator's own record of when they broke it;
- else the first failed availability probe ("detected"): the fault is placed midway between the
  last good probe and the first failed one, and the time to detect is then undefined (it is the
  detection itself); the report says which was used.

The observation ends when the duration is over, or (``--until-recovered``) once the service has
been continuously good for the stability window after the fault plus a cool-down, or on SIGINT /
SIGTERM: each ends it cleanly and still analyzes and reports.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import select
import socket
import sys
import termios
import threading
import time
import tty
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from drillbit.core.clock import Clock, installed
from drillbit.core.errors import EXIT_ENVIRONMENT, ConfigError, DrillError, EnvironmentFailure
from drillbit.core.events import EventLog, read_events
from drillbit.core.redact import Redactor, redact_url, secret_values
from drillbit.core.results import RUN, AuditFields, RunInfo, RunStatus, read_model, write_model
from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA, EVENTS
from drillbit.ledger import LEDGER as LEDGER_FILE
from drillbit.ledger import Ledger, read, state_root
from drillbit.live import LiveView, Snapshot, locust_now
from drillbit.load.profiles import load_profile
from drillbit.probes.samplers import read_samples
from drillbit.runner import DrillResult, RunOptions, clean_orphan
from drillbit.runs import (
    DrillInterrupted,
    Signals,
    file_ref,
    finish_run,
    git,
    open_run_dir,
    tool_versions,
    write_slas,
)
from drillbit.session import LIVE_STATS, LoadSpec, Session
from drillbit.sla import DRIFT_METRICS, MARKETDATA_METRICS, Sla, default_sla_file, load_sla_file, slas_for
from drillbit.targets import resolve_target
from drillbit.targets.http import HttpTarget

__all__ = ["MARK_KINDS", "ObserveOptions", "add_mark", "observe", "parse_duration"]

log = logging.getLogger(__name__)

MARK_KINDS = ("fault", "restore", "note")
#: metrics that need the load generator / a heartbeat; dropped (and said so) when there is none
LOAD_METRICS = {"p50_ms", "p95_ms", "p99_ms", "errors", "error_rate_percent", "scale_out_p95_ms", *DRIFT_METRICS}
WRITE_METRICS = {"rpo_s", "lost_writes", *MARKETDATA_METRICS}


@dataclass(frozen=True)
class ObserveOptions:
    env: str | None = "sandbox"  # a drill target name; None with url
    url: str | None = None  # any HTTP service instead of an env
    dsn: str | None = None  # a database to write heartbeats to (RPO)
    profile: str | None = None  # optional load
    locustfile: str | None = None  # default: trader on an env, ping on a URL
    workers: int = 1  # generator processes (the profile's rate split among them)
    duration_s: float = 1800.0
    until_recovered: bool = False
    stability_s: float = 5.0
    cooldown_s: float = 10.0
    interval_s: float = 0.1  # availability probe
    name: str = "observe"  # run name; also the SLA file's experiment key
    out: Path = Path("runs")
    state_dir: Path | None = None
    sla_file: Path | None = None
    operator: str | None = None
    audit: AuditFields = field(default_factory=AuditFields)
    tty: bool | None = None
    say: Any = print


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``1h30m`` -> seconds."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip().lower())
    if not text.strip() or match is None:
        raise ConfigError("--duration", f"{text!r} is not a duration: use e.g. 90s, 30m or 1h")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError("--duration", f"{text!r} is not a positive duration: use e.g. 90s, 30m or 1h")
    return total


def add_mark(label: str, kind: str = "fault", run_dir: Path | None = None,
             state_dir: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Append a timestamped mark to a run's events (the active observation's by default)."""
    if kind not in MARK_KINDS:
        raise ConfigError("--kind", f"unknown mark kind {kind!r}: use one of {', '.join(MARK_KINDS)}")
    if not label.strip():
        raise ConfigError("drill mark", "LABEL is empty: say what happened, e.g. 'DNS switched to region-b'")
    if run_dir is None:
        entry = read(state_root(state_dir) / LEDGER_FILE)
        if entry is None or not entry.alive():
            raise ConfigError("drill mark", f"no active observation under {state_root(state_dir)}: "
                                            "start one with `drill observe`, or pass --run RUN_DIR")  # fmt: skip
        run_dir = Path(entry.run_dir)
    if not (run_dir / RUN).exists():
        raise ConfigError("--run", f"{run_dir} is not a run directory (no {RUN})")
    if (run_dir / "MANIFEST").exists():
        raise ConfigError("--run", f"{run_dir} is sealed: a mark now would break its evidence (drill verify)")
    anchor = read_model(run_dir / RUN, RunInfo).clock_anchor
    clock = Clock(*anchor) if anchor is not None else Clock()  # the run's own clock (runs before anchors: a new one)
    with EventLog(run_dir / EVENTS, clock) as events:
        return events.emit("mark", mark=kind, label=label, by_pid=os.getpid())


def _check_dsn(dsn: str) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=5):
            pass
    except psycopg.ProgrammingError as err:  # a malformed DSN
        raise ConfigError("--dsn", f"not a valid DSN: {str(err).strip()}") from None
    except psycopg.OperationalError as err:
        text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        if any(k in text for k in ("authentication", "does not exist", "password", "permission denied")):
            raise ConfigError("--dsn", f"the database refused it: {text}: fix the user, password or database") from None
        raise EnvironmentFailure(f"--dsn: cannot reach the database: {text}") from None


class _Watch:
    """Follows the observation live: the fault (marked or detected) and sustained recovery."""

    def __init__(self, run_dir: Path, events: EventLog, stability_s: float, interval_s: float) -> None:
        self.run_dir, self.events, self.stability_s, self.interval_s = run_dir, events, stability_s, interval_s
        self.fault_at: float | None = None
        self.source: str | None = None
        self.recovered_at: float | None = None

    def _mark(self) -> float | None:
        marks = [e for e in read_events(self.run_dir / EVENTS) if e.get("kind") == "mark" and e.get("mark") == "fault"]
        return float(marks[0]["t"]) if marks else None

    def update(self) -> None:

        if self.source != "marked" and (marked := self._mark()) is not None:
            self.fault_at, self.source = marked, "marked"
            self.events.emit("phase", t=marked, name="fault")
        try:
            samples = read_samples(self.run_dir / AVAILABILITY, AVAILABILITY_SCHEMA, live=True).to_pydict()
        except (FileNotFoundError, OSError, ValueError):
            return
        t, ok, lat = samples["t"], samples["ok"], samples["latency"]
        failed = [i for i, good in enumerate(ok) if not good]
        if self.fault_at is None and failed:
            i = failed[0]
            good_before = [t[j] + (lat[j] if lat[j] == lat[j] else 0) / 2 for j in range(i) if ok[j]]
            at = (good_before[-1] + t[i]) / 2 if good_before else t[i]
            self.fault_at, self.source = at, "detected"
            self.events.emit("fault.detected", t=at, first_failed_probe=t[i])
            self.events.emit("phase", t=at, name="fault")
        if self.fault_at is None or self.recovered_at is not None:
            return
        after = [i for i in failed if t[i] >= self.fault_at]
        start = (after[-1] + 1) if after else next((i for i, v in enumerate(t) if v >= self.fault_at), len(t))
        # judged on the samples written so far (the journal lags the clock), with a margin of two
        # probes so the analyzer, which sees the same samples, agrees; a marked fault the probes
        # never felt (a seamless failover) recovers at the mark
        if (after or self.source == "marked") and start < len(t) and (
                t[-1] - t[start] >= self.stability_s + 2 * self.interval_s):  # fmt: skip
            self.recovered_at = t[start]
            self.events.emit("phase", t=t[start], name="after")


class _KeyMarks:
    """The live view's keys: f marks the fault, r the restore (only on a terminal)."""

    def __init__(self, run_dir: Path, view: LiveView) -> None:
        self.run_dir, self.view = run_dir, view
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="key-marks", daemon=True)
        self._saved: list[Any] | None = None

    def start(self) -> None:
        if not sys.stdin.isatty() or os.tcgetpgrp(sys.stdin.fileno()) != os.getpgrp():
            return  # no terminal, or running in the background (touching it would stop us with SIGTTOU)
        self._saved = termios.tcgetattr(sys.stdin)
        tty.setcbreak(sys.stdin)
        self.view.event("keys: f = mark the fault now, r = mark the restore")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            if not ready:
                continue
            key = sys.stdin.read(1).lower()
            kind = {"f": "fault", "r": "restore"}.get(key)
            if kind:
                add_mark(f"{kind} (key)", kind, self.run_dir)
                self.view.event(f"marked: {kind}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1)
        if self._saved is not None:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)


def _locustfile(options: ObserveOptions, is_env: bool) -> str | None:
    """The load's locustfile (None: no load): the one asked for, else trader on an env, ping on a URL."""
    return (options.locustfile or ("trader" if is_env else "ping")) if options.profile is not None else None


def _slas(options: ObserveOptions, locustfile: str | None, has_writes: bool) -> tuple[dict[str, Sla], list[str]]:
    has_load = locustfile is not None
    chosen = slas_for(load_sla_file(options.sla_file), options.name, str(options.sla_file or default_sla_file()),
                      locustfile=locustfile, profile=options.profile)  # fmt: skip
    notes = []
    for key, sla in list(chosen.items()):
        if sla.metric in LOAD_METRICS and not has_load:
            notes.append(f"SLA {key} ({sla.text}) not judged: no load was applied (use --profile)")
            del chosen[key]
        elif sla.metric in WRITE_METRICS and not has_writes:
            notes.append(f"SLA {key} ({sla.text}) not judged: no write path (use --dsn or an env)")
            del chosen[key]
    if not chosen:  # nothing to judge must never read as a pass
        raise ConfigError(str(options.sla_file or default_sla_file()),
                          [f"no SLA applies to {options.name!r} that this observation can measure", *notes])
    return chosen, notes


def _target(options: ObserveOptions) -> Any:
    if options.url is not None:
        target = HttpTarget(options.url, options.dsn)
        if not target.reachable():
            raise EnvironmentFailure(f"--url: nothing answers at {target.shown_url}: check the address (is it up?)")
        if options.dsn is not None:
            _check_dsn(options.dsn)
        return target

    return resolve_target(options.env or "sandbox", state_dir=options.state_dir)


def observe(options: ObserveOptions) -> DrillResult:
    """Observe until the duration ends, recovery (``until_recovered``) or a signal; analyze and report."""

    with Signals() as signals, installed(Clock()):  # one clock anchor for every process of the run
        try:
            clean_orphan(RunOptions(state_dir=options.state_dir, say=options.say))
            shown = redact_url(options.url) if options.url else None
            ledger = Ledger(state_root(options.state_dir), shown or options.env or "sandbox",
                            options.state_dir, mode="observe").open()  # fmt: skip
        except DrillInterrupted:
            raise DrillError("interrupted before the observation started") from None
        try:
            return _observe(options, signals, ledger)
        except DrillInterrupted:
            raise DrillError("interrupted before the observation started") from None
        finally:
            signals.shield()
            ledger.close()


def _step(what: str, fn: Any) -> None:
    try:
        fn()
    except Exception as err:  # noqa: BLE001  (each clean-up step must not stop the others; the error is reported)
        log.error("clean-up: %s failed: %s: %s", what, type(err).__name__, err)


def _observe(options: ObserveOptions, signals: Signals, ledger: Ledger) -> DrillResult:
    if options.profile is not None:

        load_profile(options.profile)
    target = _target(options)
    endpoints = target.endpoints()
    is_env = options.url is None
    locustfile = _locustfile(options, is_env)
    slas, notes = _slas(options, locustfile, endpoints.dsn is not None)
    clock = Clock.from_env()
    run_dir = open_run_dir(options.out, options.name, clock)
    commit = git("rev-parse", "HEAD")
    info = RunInfo(
        id=run_dir.name, mode="observe", target={"name": target.name, "kind": target.kind,
                                                 "fingerprint": target.fingerprint()},
        profile=options.profile, locustfile=locustfile, sla=file_ref(options.sla_file or default_sla_file()),
        git_commit=commit,
        git_dirty=bool(git("status", "--porcelain")) if commit else None,
        operator=options.operator or os.environ.get("DRILL_OPERATOR") or getpass.getuser(), audit=options.audit,
        versions=tool_versions(), host=socket.gethostname(), pid=os.getpid(), started_at=clock.now(), notes=notes,
        clock_anchor=(clock.wall_anchor, clock.mono_anchor),
    )  # fmt: skip

    write_model(run_dir / RUN, info)
    write_slas(run_dir, slas)
    ledger.update(run_dir=str(run_dir.resolve()))
    events = EventLog(run_dir / EVENTS, clock)
    load = None
    if options.profile is not None and locustfile is not None:
        load = LoadSpec(options.profile, locustfile, options.workers)
    session = Session(run_dir, clock, api_url=endpoints.api_url, run_id=uuid.uuid4().hex[:16], write_path=is_env,
                      dsn=endpoints.dsn, heartbeat_via=endpoints.heartbeat_via,
                      replicas=target if is_env else None, load=load, cover_s=options.duration_s + 60,
                      availability_interval=options.interval_s,
                      marketdata=any(s.metric in MARKETDATA_METRICS for s in slas.values()))  # fmt: skip
    watch = _Watch(run_dir, events, options.stability_s, options.interval_s)
    started = time.monotonic()

    def snapshot() -> Snapshot:
        rps, p95, failures = locust_now(run_dir / f"{LIVE_STATS}_stats_history.csv")
        phase = "recovered" if watch.recovered_at else f"fault ({watch.source})" if watch.fault_at else "watching"
        return Snapshot(phase=phase, elapsed_s=time.monotonic() - started, rps=rps, p95_ms=p95, failures=failures)

    view = LiveView(f"observe {run_dir.name}", snapshot, tty=options.tty)
    keys = _KeyMarks(run_dir, view)
    status, error = RunStatus.COMPLETED, None
    options.say(f"observing {redact_url(endpoints.api_url)} into {run_dir} (drillbit injects nothing; mark the "
                f"fault with `drill mark LABEL --kind fault`)")  # fmt: skip
    view.start()
    try:
        events.emit("phase", name="baseline")
        with signals.deferred():  # the generator is spawned and recorded at once
            session.start()
            if session.load is not None:
                ledger.note_load(session.load.pid)
        keys.start()
        deadline = started + options.duration_s
        settle = options.stability_s + options.cooldown_s  # recovery confirmed, then the cool-down
        while time.monotonic() < deadline:
            watch.update()
            if options.until_recovered and watch.recovered_at is not None and (
                    clock.now() - watch.recovered_at >= settle):  # fmt: skip
                break
            time.sleep(0.25)
    except DrillInterrupted:
        view.event("observation ended by signal: analyzing what was recorded")
    except Exception as err:  # noqa: BLE001  (the clean-up below must run; the error ends the run as ERROR)
        status, error = RunStatus.ERROR, str(err) if isinstance(err, DrillError) else f"{type(err).__name__}: {err}"
    signals.shield()
    _step("keys", keys.stop)
    _step("watch", watch.update)
    events.emit("drill.end", status=status.value)  # the observation ends here; the samplers cover it
    for what, step in (("load and samplers", session.stop), ("heartbeat read-back", session.readback),
                       ("live view", view.stop)):  # fmt: skip
        _step(what, step)
    died = session.dead_samplers()
    for why in died:
        events.emit("sampler.died", error=why)
    ledger.close()  # no mark after this: the run is being sealed
    info = info.model_copy(update={"ended_at": clock.now(),
                                   "notes": [*info.notes, *(f"a sampler died during the run: {w}" for w in died)]})
    try:
        verdicts = finish_run(run_dir, info, slas, status, Redactor(secret_values(None)), options.stability_s)
    finally:
        events.close()
    code = EXIT_ENVIRONMENT if status is RunStatus.ERROR else verdicts.exit_code
    return DrillResult(run_dir, status, verdicts, code, error)

