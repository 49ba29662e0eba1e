"""``drill run``: the CLI of the drill runner (one experiment, or a suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from drillbit.core.errors import ConfigError, DrillError, EnvironmentFailure
from drillbit.core.results import AuditFields, RunStatus, VerdictSet
from drillbit.faults import needs_backups
from drillbit.ledger import state_root
from drillbit.load.runner import find_locustfile
from drillbit.plan import load_plan, region_problems
from drillbit.runner import DrillResult, RunOptions, bring_up, run_drill
from drillbit.suite import combined_exit_code, load_suite
from drillbit.targets import env_down, is_up, resolve, resolve_target
from drillbit.targets.sandbox.topology import load_topology

__all__ = [
    "ApproverOpt",
    "ObjectivesOpt",
    "OutOpt",
    "ParticipantOpt",
    "PlainOpt",
    "ScopeOpt",
    "SlaOpt",
    "StateDirOpt",
    "register",
    "say_verdicts",
    "summary",
]


def _state_dir(value: Path | None) -> Path | None:
    """--state-dir (or $DRILL_STATE_DIR) must be a directory, or not exist yet."""

    root = state_root(value)
    if os.path.lexists(root) and not root.is_dir():
        where = "--state-dir" if value is not None else "$DRILL_STATE_DIR"
        raise typer.BadParameter(f"{root} is not a directory: pass a directory (default .drill)", param_hint=where)
    return value


def _runs_dir(value: Path) -> Path:
    """--out of run/observe: where run directories go; a directory, or to be created."""
    if os.path.lexists(value) and not value.is_dir():
        raise typer.BadParameter(f"{value} is not a directory: pass the directory run directories go to "
                                 "(default runs)", param_hint="--out")  # fmt: skip
    return value


# options every command that touches an environment takes (one definition, the same help)
StateDirOpt = Annotated[Path | None, typer.Option("--state-dir", callback=_state_dir,
                                                  help="Environment state (default .drill or $DRILL_STATE_DIR).")]
# options both `drill run` and `drill observe` take (one definition, the same help)
SlaOpt = Annotated[Path | None, typer.Option(help="SLA file (default experiments/slas.yaml).")]
OutOpt = Annotated[Path, typer.Option(help="Where run directories go.", callback=_runs_dir)]
ScopeOpt = Annotated[str | None, typer.Option(help="Audit: the drill's scope.")]
ObjectivesOpt = Annotated[str | None, typer.Option(help="Audit: the drill's objectives.")]
ParticipantOpt = Annotated[list[str] | None, typer.Option(help="Audit: a participant (repeatable).")]
ApproverOpt = Annotated[str | None, typer.Option(help="Audit: who approved the drill.")]
PlainOpt = Annotated[bool, typer.Option("--plain", help="Plain progress lines even on a terminal.")]


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def say_verdicts(verdicts: VerdictSet) -> None:
    """One line per verdict, then the drill-wide notes (on stderr)."""
    for v in verdicts.verdicts:
        measured = "-" if v.measured is None else f"{v.measured:.4g} {v.unit}"
        _say(f"  {v.verdict.value:<12} {v.requirement:<7} {v.requirement_text}: {measured} "
             f"(target {v.op} {v.target:g} {v.unit}){'  - ' + v.reason if v.reason else ''}")  # fmt: skip
    for reason in verdicts.inconclusive_reasons:
        _say(f"  note: {reason}")


def summary(result: DrillResult) -> None:
    _say(f"run directory: {result.run_dir}")
    if result.verdicts is not None:
        say_verdicts(result.verdicts)
    outcome = result.verdicts.outcome.value if result.verdicts is not None else "ERROR"
    _say(f"{outcome} ({result.status.value}), exit {result.exit_code}" + (f": {result.error}" if result.error else ""))


def _server_dry_run(env: str, state_dir: Path | None) -> None:
    """Each kind of change a drill makes, sent to a target that can check it without making it (a
    Kubernetes API's dryRun=All); a refusal is an environment error (exit 4) naming it."""
    if not is_up(env, state_dir=state_dir):
        typer.echo(f"{env} is not up: no server-side dry run")
        return
    rows = resolve_target(env, state_dir=state_dir).dry_run()
    for r in rows:
        verdict = "ok" if r["ok"] else f"REFUSED: {r['error']}"
        typer.echo(f"  server-side dry run: {r['change']} on {r['object']}: {verdict}")
    refused = [f"{r['change']} on {r['object']}" for r in rows if not r["ok"]]
    if refused:
        raise EnvironmentFailure(f"{env} would refuse: {'; '.join(refused)} (server-side dry run): fix the "
                                 "drill runner's permissions or the objects it names")  # fmt: skip


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); a one-line ConfigError naming ``option`` otherwise."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(option, f"{value!r}: give HOST:PORT, e.g. 127.0.0.1:5557")
    return host.strip("[]"), int(port)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        experiment: Annotated[Path | None, typer.Argument(help="Chaos Toolkit experiment file (YAML/JSON).")] = None,
        env: Annotated[str, typer.Option("--env", "-e", help="Target: sandbox or a drill.yaml name.")] = "sandbox",
        profile: Annotated[str | None, typer.Option(help="Load profile (name or file).")] = None,
        workers: Annotated[int | None, typer.Option(
            help="Generator processes on this machine (Locust master + N workers; the rate is split among "
                 "them). Default: the experiment's processes, else 1.")] = None,
        master_bind: Annotated[str | None, typer.Option(
            help="HOST:PORT: the load's --workers run on other machines (drill worker --master HOST:PORT) "
                 "and send their request records here; no local workers.")] = None,
        locustfile: Annotated[str | None, typer.Option(
            help="The load's locustfile (trader, marketdata, ping or a file). Default: the experiment's.")] = None,
        sla: SlaOpt = None,
        out: OutOpt = Path("runs"),
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate, print the plan, inject nothing.")] = False,
        keep: Annotated[bool, typer.Option(help="Leave an environment this drill started up afterwards.")] = False,
        suite: Annotated[str | None, typer.Option(help="Run a suite from experiments/suites.yaml instead.")] = None,
        state_dir: StateDirOpt = None,
        topology: Annotated[Path | None, typer.Option(help="Sandbox topology, if the drill starts it.")] = None,
        with_monitoring: Annotated[bool, typer.Option(
            "--with-monitoring", help="Measure alert latency: the sandbox with Prometheus and Alertmanager.")] = False,
        operator: Annotated[str | None, typer.Option(help="Who runs it (default $DRILL_OPERATOR).")] = None,
        scope: ScopeOpt = None,
        objectives: ObjectivesOpt = None,
        participant: ParticipantOpt = None,
        approver: ApproverOpt = None,
        plain: PlainOpt = False,
    ) -> None:
        """Run an experiment (or a suite) against a live target under load; measure, judge, report."""

        if (experiment is None) == (suite is None):
            raise ConfigError("drill run", "give one experiment file or --suite NAME")
        files = [experiment] if experiment is not None else load_suite(str(suite))[1]
        plans, problems = [], []
        for f in files:  # validate them all before running any
            try:
                plans.append(load_plan(f, sla_path=sla, profile=profile, workers=workers, locustfile=locustfile))
            except ConfigError as err:
                problems.append(str(err))
        if problems:
            raise ConfigError("drill run", problems)
        target = resolve(env)  # a typo in --env is a usage error, also for a dry run
        if target.kind.name == "sandbox":  # its regions are known before it is up: a typo is a usage error too
            regions = [r.name for r in load_topology(topology or target.spec.topology).regions]
            wrong = [f"{plan.experiment_path}: {p}" for plan in plans for p in region_problems(plan, regions)]
            if wrong:
                raise ConfigError("drill run", wrong)
        if dry_run:
            for plan in plans:
                typer.echo(f"plan for {plan.experiment_path} on {env} (dry run: nothing injected):")
                for line in plan.describe():
                    typer.echo(f"  {line}")
            _server_dry_run(env, state_dir)
            return
        backups = True if target.kind.name == "sandbox" and any(needs_backups(p.experiment) for p in plans) else None
        options = RunOptions(env=env, out=out, state_dir=state_dir, topology=topology,
                             master_bind=None if master_bind is None else parse_host_port(master_bind, "--master-bind"),
                             monitoring=True if with_monitoring else None, backups=backups,
                             keep=keep or len(plans) > 1,
                             operator=operator, tty=False if plain else None, say=_say,
                             audit=AuditFields(scope=scope, objectives=objectives, participants=participant or [],
                                               approver=approver))  # fmt: skip
        codes = []
        suite_env = len(plans) > 1 and bring_up(options)  # a suite shares one environment
        try:
            for plan in plans:
                if len(plans) > 1:
                    _say(f"== {plan.experiment_path}")
                try:
                    result = run_drill(plan, options)
                except DrillError as err:
                    if len(plans) == 1:
                        raise
                    _say(f"drill: error: {err}")
                    codes.append(err.exit_code)
                    continue
                summary(result)
                codes.append(result.exit_code)
                if result.status is RunStatus.INTERRUPTED:
                    if len(plans) > 1:
                        _say("interrupted: the rest of the suite is not run")
                    break
        finally:
            if suite_env and not keep:
                env_down(env, state_dir=state_dir, report=_say)
        code = combined_exit_code(codes)
        if len(plans) > 1:
            _say(f"suite {suite}: exit {code} ({', '.join(str(c) for c in codes)})")
        if code:
            raise typer.Exit(code)

    @app.command("worker")
    def worker(
        master: Annotated[str, typer.Option(help="HOST:PORT of the drill's Locust master (drill run --master-bind).")],
        locustfile: Annotated[str, typer.Option(help="The drill's locustfile (trader, marketdata, ping or a file).")]
        = "trader",
    ) -> None:
        """One load generator process for a drill run from another machine: it connects to the master,
        runs the users it is given and sends every request record to the master (none is kept here)."""
        host, port = parse_host_port(master, "--master")
        cmd = [sys.executable, "-m", "locust", "-f", str(find_locustfile(locustfile)), "--worker",
               "--master-host", host, "--master-port", str(port), "--loglevel", "WARNING"]  # fmt: skip
        raise typer.Exit(subprocess.run(cmd, env={**os.environ, "DRILL_RECORDS_VIA": "master"}, check=False).returncode)
