"""``drill run``: one experiment against a live target, under load, measured, judged, reported.

The stages (ARCHITECTURE.md, "One drill"): preflight (``drillbit.plan``), environment, run
directory, samplers and load, baseline, the experiment through chaostoolkit-lib (rollback
strategy "always", the drillbit control timing every fault), recovery until the service is
continuously good (bounded), cool-down, stop load, heal the target, RPO read-back, analyze,
judge, report, seal.

Interruptions: SIGINT or SIGTERM at any moment ends the drill early but cleanly: chaostoolkit
rolls back (it handles both signals during the experiment), the target is healed, the load
stopped, samplers flushed, what was measured analyzed, and run.json says ``interrupted``. A
further signal during that clean-up is ignored (it must finish). A SIGKILLed drill leaves its
record (``drillbit.ledger``); the next ``drill run`` cleans up after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drillbit.annotations import GrafanaConfig, annotate_run
from drillbit.control import control_entry
from drillbit.core.clock import Clock, installed
from drillbit.core.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INCONCLUSIVE,
    ConfigError,
    DrillError,
    EnvironmentFailure,
    validation_problems,
)
from drillbit.core.events import EventLog, read_events
from drillbit.core.redact import Redactor, secret_values
from drillbit.core.results import (
    JOURNAL,
    RUN,
    AuditFields,
    FileRef,
    RunInfo,
    RunStatus,
    VerdictSet,
    read_model,
    write_model,
)
from drillbit.core.rundir import AVAILABILITY, AVAILABILITY_SCHEMA, EVENTS, REPLICAS, REPLICAS_SCHEMA
from drillbit.core.safeio import write_text
from drillbit.faults import wait_steadily, wait_until_ready
from drillbit.ledger import ActiveDrill, Ledger, find_orphan, forget, state_root, stop_orphaned_load
from drillbit.live import LiveView, Snapshot, locust_now
from drillbit.manifests import record_manifests
from drillbit.plan import DrillPlan
from drillbit.probes.promql import record_promql
from drillbit.probes.samplers import read_samples
from drillbit.runs import (
    DrillInterrupted,
    Signals,
    file_ref,
    finish_run,
    git,
    open_run_dir,
    read_slas,
    tool_versions,
    write_slas,
)
from drillbit.session import LIVE_STATS, AlertWiring, LoadSpec, Session, stop_condition
from drillbit.sla import MARKETDATA_METRICS, default_sla_file
from drillbit.targets import Target, env_down, env_up, is_up, load_section, resolve_target

__all__ = ["DrillResult", "RunOptions", "bring_up", "clean_orphan", "run_drill"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    env: str = "sandbox"
    out: Path = Path("runs")
    state_dir: Path | None = None
    topology: Path | None = None
    monitoring: bool | None = None  # the sandbox with Prometheus and Alertmanager (--with-monitoring)
    backups: bool | None = None  # the sandbox with backups to a bucket (a drill that restores from them)
    master_bind: tuple[str, int] | None = None  # the load's workers are remote (drill worker) and connect here
    keep: bool = False
    operator: str | None = None
    audit: AuditFields = field(default_factory=AuditFields)
    tty: bool | None = None  # live view: None = when stderr is a terminal
    say: Callable[[str], None] = print


@dataclass(frozen=True)
class DrillResult:
    run_dir: Path
    status: RunStatus
    verdicts: VerdictSet | None
    exit_code: int
    error: str | None = None
    started_env: bool = False  # this drill brought the environment up


# -- the drill -----------------------------------------------------------------------------------


class Drill:
    def __init__(self, plan: DrillPlan, options: RunOptions, target: Target, run_dir: Path, clock: Clock) -> None:
        self.plan, self.options, self.target, self.run_dir, self.clock = plan, options, target, run_dir, clock
        self.events = EventLog(run_dir / EVENTS, clock)
        self.redactor = Redactor(secret_values(None))
        self.started_mono = time.monotonic()
        self.phase_name = "starting"
        endpoints = target.endpoints()
        settings = plan.settings
        self.session = Session(
            run_dir, clock, api_url=endpoints.api_url, run_id=uuid.uuid4().hex[:16], dsn=endpoints.dsn,
            heartbeat_via=endpoints.heartbeat_via, replicas=target,
            alerts=AlertWiring(endpoints.alert_receiver, None if settings.expect_alerts is None else
                               [e.model_dump() for e in settings.expect_alerts], endpoints.prometheus_url,
                               endpoints.alertmanager_url),
            load=LoadSpec(settings.profile, settings.locustfile, settings.processes, options.master_bind),
            cover_s=settings.baseline_s + settings.max_recovery_s + settings.cooldown_s + 600,
            on_stop_condition=_interrupt_self,
            marketdata=any(s.metric in MARKETDATA_METRICS for s in plan.slas.values()),
        )  # fmt: skip
        self.view = LiveView(f"drill {run_dir.name}", self._snapshot, tty=options.tty)

    # -- run.json ----------------------------------------------------------------------------
    def run_info(self, operator: str) -> RunInfo:
        fingerprint = self.target.fingerprint()
        target_facts = {"name": self.target.name, "kind": self.target.kind, "fingerprint": fingerprint}
        topology = fingerprint.get("topology")
        manifests = [r for r in (file_ref(Path(topology)) if topology else None,) if r is not None]
        checked, notes = None, []
        if fingerprint.get("manifests"):
            try:
                checked = record_manifests(fingerprint["manifests"])
                manifests += [FileRef(path=s.path, sha256=s.sha256) for s in checked.sources]
            except DrillError as err:  # the drill runs; the record says why the manifests are not in it
                notes.append(f"the manifests under test ({fingerprint['manifests']}) could not be recorded: {err}")
        commit = git("rev-parse", "HEAD")
        return RunInfo(
            id=self.run_dir.name, experiment=file_ref(self.plan.experiment_path),
            experiment_title=self.plan.experiment.get("title"), target=target_facts, profile=self.plan.settings.profile,
            locustfile=self.plan.settings.locustfile,
            sla=file_ref(self.plan.sla_path or default_sla_file()),
            git_commit=commit, git_dirty=bool(git("status", "--porcelain")) if commit else None, manifests=manifests,
            manifests_check=checked.record if checked else None, notes=notes,
            operator=operator, audit=self.options.audit, versions=tool_versions(), host=socket.gethostname(),
            pid=os.getpid(), started_at=self.clock.now(),
            clock_anchor=(self.clock.wall_anchor, self.clock.mono_anchor),
        )  # fmt: skip

    # -- phases ------------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        self.phase_name = name
        self.events.emit("phase", name=name)
        self.view.event(f"phase: {name}")

    def _snapshot(self) -> Snapshot:

        rps, p95, failures = locust_now(self.run_dir / f"{LIVE_STATS}_stats_history.csv")
        probe = None
        with contextlib.suppress(OSError, ValueError):
            table = read_samples(self.run_dir / AVAILABILITY, AVAILABILITY_SCHEMA, live=True)
            if table.num_rows:
                recent = table.column("ok").to_pylist()[-10:]
                probe = "ok" if all(recent) else f"FAILING ({recent.count(False)}/10 recent)"
        replicas: dict[str, dict[str, int]] = {}
        with contextlib.suppress(OSError, ValueError):  # the replica sampler's latest sample (no second probe)
            rows = read_samples(self.run_dir / REPLICAS, REPLICAS_SCHEMA, live=True).to_pylist()
            last = max((r["t"] for r in rows), default=None)
            replicas = {r["region"]: {"desired": r["desired"], "ready": r["ready"]} for r in rows if r["t"] == last}
        # the control marks the fault phase in events.jsonl: the latest phase event is the truth
        with contextlib.suppress(OSError):
            phases = [e["name"] for e in read_events(self.run_dir / EVENTS) if e.get("kind") == "phase"]
            self.phase_name = phases[-1] if phases else self.phase_name
        return Snapshot(phase=self.phase_name, elapsed_s=time.monotonic() - self.started_mono, rps=rps, p95_ms=p95,
                        failures=failures, replicas=replicas, availability=probe)  # fmt: skip

    def wait(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def experiment(self) -> dict[str, Any]:
        from chaoslib.exceptions import ChaosException
        from chaoslib.experiment import run_experiment
        from chaoslib.secret import load_secrets

        exp = json.loads(json.dumps(self.plan.experiment))  # a copy: the plan stays as validated
        config = exp.setdefault("configuration", {})
        # the faults act on exactly the target the drill measures (its own state, never a default)
        config.update({"drillbit_target": self.target.name, "drillbit_run_dir": str(self.run_dir),
                       "drillbit_state_dir": str(self.target.state_dir()),
                       "drillbit_run_id": self.session.run_id})  # fmt: skip
        exp.setdefault("controls", []).append(control_entry(self.run_dir / EVENTS))
        try:
            self.redactor = Redactor(secret_values(load_secrets(exp.get("secrets") or {}, config)))
        except ChaosException as err:  # the experiment itself then fails on them, visibly in its journal
            log.warning("secrets did not resolve: %s", err)
        settings = {"runtime": {"rollbacks": {"strategy": "always"}}}
        with self.target.activity_scope():
            journal: dict[str, Any] = run_experiment(exp, settings=settings)
        self.write_journal(journal)
        return journal

    def write_journal(self, journal: dict[str, Any]) -> None:
        path = self.run_dir / JOURNAL
        write_text(path, json.dumps(self.redactor(journal), indent=2, default=str))

    def await_recovery(self) -> bool:
        """Until the service is continuously ready for the stability window, at most max_recovery_s."""
        s = self.plan.settings
        if wait_until_ready(self.target, s.max_recovery_s, s.stability_s) is not None:
            return True
        self.view.event(f"not recovered within {s.max_recovery_s:g} s: going on")
        return False

    def heal(self) -> None:
        try:
            healed = self.target.heal()
        except DrillError as err:
            self.events.emit("heal.failed", error=str(err))
            raise
        self.events.emit("heal", **healed)
        if healed.get("restored"):
            self.view.event(f"healed: restored {', '.join(healed['restored'])}")
        if healed.get("whole") is not True:
            raise EnvironmentFailure("the target is not whole after healing it: check it by hand (drill env status)")


def _interrupt_self(why: str) -> None:
    """A stop condition fired (a sampler's thread): interrupt the drill as SIGINT does, through the
    same path (the control during the experiment, ``Signals`` outside it): rollbacks, heal, stop."""
    log.warning("stop condition %s: interrupting the drill", why)
    os.kill(os.getpid(), signal.SIGINT)


def _interrupted_during(run_dir: Path, journal: dict[str, Any]) -> bool:
    """A signal reached the experiment: the drillbit control recorded it (it owns SIGINT/SIGTERM
    during the experiment), or chaostoolkit says so."""
    if journal.get("status") == "interrupted":
        return True
    return any(e.get("kind") == "signal" for e in read_events(run_dir / EVENTS))


def _step(what: str, fn: Callable[[], Any]) -> bool:
    """One clean-up step: its failure is logged and does not stop the next."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001  (each clean-up step must not stop the others; the error is reported)
        log.error("clean-up: %s failed: %s: %s", what, type(err).__name__, err)
        return False
    return True


def _stop_everything(drill: Drill, *, interrupted: bool) -> bool:
    """Heal the target first (a fault must not outlive the drill), then stop the load and the
    samplers, read the heartbeat back and check trading integrity; each step isolated. True when the target is whole."""
    healed = _step("healing the target", drill.heal)
    if healed and interrupted:
        _step("waiting for recovery", drill.await_recovery)
    _step("stopping the load", drill.session.stop_load)
    _step("stopping the samplers", drill.session.stop)
    _step("reading the heartbeat back", drill.session.readback)
    _step("checking trading integrity", drill.session.check_integrity)
    return healed


def bring_up(options: RunOptions) -> bool:
    """Bring the target up if it is not; True when this drill started it (and should stop it)."""
    if is_up(options.env, state_dir=options.state_dir):
        running = resolve_target(options.env, state_dir=options.state_dir) if options.monitoring else None
        if running is not None and running.endpoints().alert_receiver is None:
            raise EnvironmentFailure(f"{options.env} is up without monitoring: `drill env down --env {options.env}`, "
                                     "then run again with --with-monitoring")  # fmt: skip
        if options.backups and not getattr(resolve_target(options.env, state_dir=options.state_dir),
                                           "backups_enabled", True):  # fmt: skip
            raise EnvironmentFailure(f"{options.env} is up without backups, which this drill restores from: "
                                     f"`drill env down --env {options.env}`, then `drill env up --env {options.env} "
                                     "--with-backups` (or let the drill start it)")  # fmt: skip
        return False
    env_up(options.env, state_dir=options.state_dir, report=options.say, topology=options.topology,
           monitoring=options.monitoring, backups=options.backups)  # fmt: skip
    return True


def clean_orphan(options: RunOptions) -> ActiveDrill | None:
    """Clean up after a drill that was SIGKILLed (see drillbit.ledger); returns its record."""
    entry = find_orphan(options.state_dir)
    if entry is None:
        return None
    options.say(f"a previous drill (pid {entry.pid}) died without cleaning up: cleaning up {entry.run_dir}")
    if stop_orphaned_load(entry):
        options.say("  stopped its load generator")
    if entry.mode == "observe":
        options.say("  it was an observation: the target is left as it is (drillbit injected nothing)")
    else:
        try:
            healed = resolve_target(entry.target, state_dir=entry.state_dir).heal()
        except DrillError as err:
            raise EnvironmentFailure(f"could not heal the target after the crashed drill: {err}") from None
        if healed.get("whole") is not True:
            raise EnvironmentFailure("the target is not whole after healing the crashed drill's faults: check it "
                                     "(drill env status); the record stays until it is")  # fmt: skip
        options.say(f"  target healed: restored {', '.join(healed['restored']) or 'nothing (it was whole)'}")
    run_dir = Path(entry.run_dir)
    if entry.run_dir and (run_dir / RUN).exists():
        info = read_model(run_dir / RUN, RunInfo)
        with EventLog(run_dir / EVENTS, Clock()) as events:
            events.emit("drill.crashed", found_by=os.getpid())
        info = info.model_copy(update={"notes": [*info.notes, "the drill process died (SIGKILL or power loss); "
                                                 "cleaned up by a later invocation"]})  # fmt: skip
        try:
            finish_run(run_dir, info, read_slas(run_dir), RunStatus.CRASHED)
        except (DrillError, OSError, ValueError) as err:
            options.say(f"  could not analyze what it measured: {err}")
    forget(entry)
    return entry


def run_drill(plan: DrillPlan, options: RunOptions) -> DrillResult:
    """Run one drill end to end; returns its outcome (the exit code is the CLI's).

    One signal handler covers the whole run, set-up included; the active-drill record is taken
    before anything touches the target, so a second drill cannot heal the first one's fault.
    """
    grafana = grafana_config()  # bad settings: a usage error before anything touches the target
    with Signals() as signals, installed(Clock()):  # one clock anchor for every process of the run
        try:
            clean_orphan(options)
            ledger = Ledger(state_root(options.state_dir), options.env, options.state_dir).open()
        except DrillInterrupted:
            raise DrillError("interrupted before the drill started: nothing was injected") from None
        started_env = False
        try:
            started_env = bring_up(options)
            result = _run(plan, options, signals, ledger, grafana)
            return dataclasses.replace(result, started_env=started_env)
        except DrillInterrupted:
            raise DrillError("interrupted before the drill started: nothing was injected") from None
        finally:
            signals.shield()
            ledger.close()
            if started_env and not options.keep:
                env_down(options.env, state_dir=options.state_dir, report=options.say)


SETTLE_S = 2.0  # whole (and at rest) at every poll for this long before the baseline starts
SETTLE_TIMEOUT_S = 30.0
# an autoscaler scales in only after its stabilization window (the sandbox's: 30 s) once the load is gone
AT_REST_TIMEOUT_S = 75.0


def _steady_before_baseline(target: Target) -> str | None:
    """A baseline measures the target at rest: whole (every replica ready, a primary leading) at every
    poll for SETTLE_S, not a target still recovering from what ran before (a failover's replicas
    reconnecting), and settled (scaled back in to its minimum after an earlier drill's load), so a
    scale-out the drill measures starts from the minimum. Healed once if it is not whole; an
    environment error if it still is not. Whole but still scaled out after AT_REST_TIMEOUT_S: the
    drill runs, and the returned note says so (its autoscaling verdicts say why they cannot judge)."""
    if wait_steadily(target.settled, AT_REST_TIMEOUT_S, SETTLE_S) is not None:
        return None
    if wait_steadily(target.whole, SETTLE_TIMEOUT_S, SETTLE_S) is not None:
        return (f"the target was still scaled out above its minimum replicas {AT_REST_TIMEOUT_S:g} s after the "
                "previous load ended: the baseline began with extra replicas")  # fmt: skip
    if target.heal().get("whole") is not True or wait_steadily(target.whole, SETTLE_TIMEOUT_S, SETTLE_S) is None:
        raise EnvironmentFailure("the target is not whole and steady (every replica ready, a primary leading) "
                                 "and healing it did not help: check it (drill env status)")  # fmt: skip
    return None


def grafana_config(config: Path | None = None) -> GrafanaConfig | None:
    """drill.yaml's ``grafana:`` (annotations of each drill's phases and faults), validated; None when absent."""
    source, raw = load_section("grafana", config)
    if raw is None:
        return None
    try:
        return GrafanaConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(str(source), [f"grafana.{p}" for p in validation_problems(err)]) from None


def _run(plan: DrillPlan, options: RunOptions, signals: Signals, ledger: Ledger,
         grafana: GrafanaConfig | None = None) -> DrillResult:  # fmt: skip
    target = resolve_target(options.env, state_dir=options.state_dir)
    ledger.update(state_dir=str(target.state_dir()))
    settling = time.monotonic()
    unsettled = _steady_before_baseline(target)
    if (waited := time.monotonic() - settling) > SETTLE_S + 1.0:  # an earlier drill's scale-out, scaling back in
        options.say(f"waited {waited:.0f} s for the target to be whole and at rest before the baseline")
    clock = Clock.from_env()
    run_dir = open_run_dir(options.out, plan.name, clock)
    ledger.update(run_dir=str(run_dir.resolve()))
    drill = Drill(plan, options, target, run_dir, clock)
    operator = options.operator or os.environ.get("DRILL_OPERATOR") or getpass.getuser()
    info = drill.run_info(operator)
    if unsettled:
        log.warning("%s", unsettled)
        info = info.model_copy(update={"notes": [*info.notes, unsettled]})
    write_model(run_dir / RUN, info)
    write_slas(run_dir, plan.slas)
    options.say(f"drill {run_dir.name}: {plan.experiment.get('title')}")
    status, error = RunStatus.COMPLETED, None
    drill.view.start()
    try:
        with signals.deferred():  # the generator is spawned and recorded at once: never an untracked child
            drill.session.start()
            if drill.session.load is not None:
                ledger.note_load(drill.session.load.pid)
        drill.session.wait_for_load()  # the baseline is a window of load, not of Locust starting
        drill.phase("baseline")
        drill.wait(plan.settings.baseline_s)
        journal = drill.experiment()
        signals.arm()  # chaostoolkit and the control had SIGINT/SIGTERM meanwhile
        if _interrupted_during(run_dir, journal):
            raise DrillInterrupted("during the experiment")
        drill.phase("recovery")
        if drill.await_recovery():
            drill.phase("after")
            drill.wait(plan.settings.cooldown_s)
    except DrillInterrupted as why:
        status, reason = RunStatus.INTERRUPTED, str(why)
        signals.shield()
        if (fired := stop_condition(run_dir)) is not None:  # a stop condition, not an operator, interrupted it
            status, reason = RunStatus.STOPPED, f"stop condition: alarm {fired.get('alarm')}"
            info = info.model_copy(update={"notes": [*info.notes, _stopped_note(fired)]})
        drill.view.event(f"interrupted ({reason}): rolling back, stopping the load, keeping what was measured")
    except Exception as err:  # noqa: BLE001  (the clean-up below must run; the error ends the drill as ERROR)
        signals.shield()
        status, error = RunStatus.ERROR, f"{type(err).__name__}: {err}" if not isinstance(err, DrillError) else str(err)
        drill.view.event(f"drill error: {error}")
    signals.shield()
    drill.events.emit("drill.end", status=status.value)
    healed = _stop_everything(drill, interrupted=status is not RunStatus.COMPLETED)
    _step("stopping the live view", drill.view.stop)
    if not healed:
        status = RunStatus.ERROR
        error = error or "the target could not be healed: check it by hand (drill env status)"
    ledger.update(load_pgid=None, load_started=None)
    died = drill.session.dead_samplers()  # their samples end early: the analysis judges the coverage
    for death in died:
        drill.events.emit("sampler.died", error=death)
    info = info.model_copy(update={"ended_at": clock.now(),
                                   "notes": [*info.notes, *(f"a sampler died during the run: {w}" for w in died)]})
    if plan.settings.promql:  # the team's own figures over the drill, from the target's Prometheus
        record_promql(run_dir, drill.target.endpoints().prometheus_url, plan.settings.promql, info.started_at,
                      clock.now())  # fmt: skip
    if grafana is not None:  # before sealing: what was posted is part of the record; never fails the drill
        posted = annotate_run(run_dir, grafana)
        drill.events.emit("grafana.annotations", url=posted.url, posted=posted.posted, attempted=posted.attempted,
                          errors=posted.errors[:5])  # fmt: skip
    try:
        verdicts = finish_run(run_dir, info, plan.slas, status, drill.redactor, plan.settings.stability_s)
    finally:
        drill.events.close()
    code = {RunStatus.ERROR: EXIT_ENVIRONMENT, RunStatus.STOPPED: EXIT_INCONCLUSIVE}.get(status, verdicts.exit_code)
    return DrillResult(run_dir, status, verdicts, code, error)


def _stopped_note(fired: dict[str, Any]) -> str:
    def utc(t: Any) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(t))) if t is not None else "?"

    return (f"stopped by a stop condition: {fired.get('source', '')} alarm {fired.get('alarm')} went to ALARM at "
            f"{utc(fired.get('changed_at'))} (seen {utc(fired.get('seen_at'))}; {fired.get('reason') or 'no reason'}): "
            "the faults were rolled back and the target healed")  # fmt: skip


def faults_landed(run_dir: Path) -> list[dict[str, Any]]:
    """The fault results recorded in a run (for tests and the CLI summary)."""
    return [e for e in read_events(run_dir / EVENTS) if e.get("kind") == "fault.result"]
