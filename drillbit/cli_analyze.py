"""``drill analyze``: re-judge a run from its raw records (see ``drillbit.reanalyze``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drillbit.cli_run import say_verdicts
from drillbit.reanalyze import reanalyze

__all__ = ["register"]


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_command(
        run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<id>).")],
        sla: Annotated[Path | None, typer.Option(help="Judge by this SLA file (default: the run's own SLAs).")] = None,
        stability: Annotated[float, typer.Option(help="Seconds of continuous success that count as recovered.")] = 5.0,
    ) -> None:
        """Recompute measurements and verdicts from a run's raw records, without the target, into
        RUN_DIR/analysis/<time>/ (the sealed originals stay as they are), and render the report there."""
        result = reanalyze(run_dir, sla, stability)
        say_verdicts(result.verdicts)
        _say(f"judged by {result.sla_source}: {result.verdicts.outcome.value}; written to {result.out}")
        typer.echo(str(result.out))
        raise typer.Exit(result.verdicts.exit_code)
