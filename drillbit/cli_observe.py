"""``drill observe`` and ``drill mark``: measure a drill drillbit does not inject."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drillbit.cli_run import (
    ApproverOpt,
    ObjectivesOpt,
    OutOpt,
    ParticipantOpt,
    PlainOpt,
    ScopeOpt,
    SlaOpt,
    StateDirOpt,
    summary,
)
from drillbit.core.errors import ConfigError
from drillbit.core.results import AuditFields
from drillbit.observe import ObserveOptions, add_mark, observe, parse_duration
from drillbit.plan import MAX_WORKERS

__all__ = ["register"]


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def register(app: typer.Typer) -> None:
    @app.command("observe")
    def observe_command(
        env: Annotated[str | None, typer.Option("--env", "-e", help="Target: sandbox or a drill.yaml name.")] = None,
        url: Annotated[str | None, typer.Option(help="Any HTTP service to probe instead of an env.")] = None,
        dsn: Annotated[str | None, typer.Option(help="A database to write heartbeats to (RPO).")] = None,
        profile: Annotated[str | None, typer.Option(help="Apply this load profile meanwhile.")] = None,
        locustfile: Annotated[str | None, typer.Option(help="Locustfile for the load (trader / ping).")] = None,
        workers: Annotated[int, typer.Option(help="Generator processes for the load (its rate split among them).")] = 1,
        duration: Annotated[str, typer.Option(help="How long at most: 90s, 30m, 1h.")] = "30m",
        until_recovered: Annotated[bool, typer.Option("--until-recovered", help="End after recovery.")] = False,
        cooldown: Annotated[float, typer.Option(help="Seconds after recovery (--until-recovered).")] = 10.0,
        interval: Annotated[float, typer.Option(help="Availability probe interval, seconds.")] = 0.1,
        name: Annotated[str, typer.Option(help="Run name (and the SLA file's experiment key).")] = "observe",
        sla: SlaOpt = None,
        out: OutOpt = Path("runs"),
        state_dir: StateDirOpt = None,
        operator: Annotated[str | None, typer.Option(help="Who observes.")] = None,
        scope: ScopeOpt = None,
        objectives: ObjectivesOpt = None,
        participant: ParticipantOpt = None,
        approver: ApproverOpt = None,
        plain: PlainOpt = False,
    ) -> None:
        """Measure a drill someone else carries out (a runbook, AWS FIS, Litmus): drillbit injects nothing."""
        if url is not None and env is not None:
            raise ConfigError("drill observe", "give --env or --url, not both")
        if not 0.01 <= interval <= 60 or cooldown < 0:
            raise ConfigError("drill observe", "--interval must be within [0.01, 60] s and --cooldown >= 0")
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError("--workers", f"{workers} generator processes: give 1 to {MAX_WORKERS}")
        if dsn is not None and url is None:
            raise ConfigError("--dsn", "only with --url: an env brings its own write path (the trading API)")
        options = ObserveOptions(
            env=None if url else (env or "sandbox"), url=url, dsn=dsn, profile=profile, locustfile=locustfile,
            workers=workers,
            duration_s=parse_duration(duration), until_recovered=until_recovered, cooldown_s=cooldown,
            interval_s=interval, name=name, out=out, state_dir=state_dir, sla_file=sla, operator=operator,
            audit=AuditFields(scope=scope, objectives=objectives, participants=participant or [], approver=approver),
            tty=False if plain else None, say=_say,
        )  # fmt: skip
        result = observe(options)
        summary(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)

    @app.command("mark")
    def mark_command(
        label: Annotated[str, typer.Argument(help="What happened, e.g. 'DNS switched to region-b'.")],
        kind: Annotated[str, typer.Option(help="fault | restore | note")] = "fault",
        run: Annotated[Path | None, typer.Option("--run", help="Run directory (default: the active one).")] = None,
        state_dir: StateDirOpt = None,
    ) -> None:
        """Mark a moment of the active observation (from another terminal): the fault, a restore, a note."""
        event = add_mark(label, kind, run, state_dir)
        typer.echo(f"marked {kind} at {event['at']}: {label}")
