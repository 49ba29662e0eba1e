"""``drill bench``: a capacity search (drillbit.bench) against an environment or any HTTP service.

Exit codes: 0 a knee was found (or every step held), 1 not even the first step held (an SLA broke
there), 3 the generator saturated before any step could be judged; bad input 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drillbit.bench import STABLE_RATIO, WARMUP, run_bench
from drillbit.cli_run import OutOpt, SlaOpt, StateDirOpt, _say
from drillbit.core.clock import Clock
from drillbit.core.errors import EXIT_FAILED, EXIT_INCONCLUSIVE, ConfigError, EnvironmentFailure
from drillbit.plan import MAX_WORKERS
from drillbit.reports.benchreport import write_bench_report
from drillbit.runs import open_run_dir
from drillbit.sla import load_sla_file, slas_for
from drillbit.targets import is_up, resolve_target

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_command(
        env: Annotated[str | None, typer.Option("--env", "-e", help="Target: sandbox or a drill.yaml name.")] = None,
        url: Annotated[str | None, typer.Option(help="Any HTTP service instead of an env.")] = None,
        profile: Annotated[str, typer.Option(help="An open-model profile: its stages are the steps.")] = "capacity",
        locustfile: Annotated[str | None, typer.Option(help="Locustfile (default: trader on an env, ping on a URL).")
                              ] = None,
        workers: Annotated[int, typer.Option(help="Generator processes (the rate split among them).")] = 1,
        warmup: Annotated[float, typer.Option(help="Share of each step left out before it is judged.")] = WARMUP,
        sla: SlaOpt = None,
        out: OutOpt = Path("runs"),
        state_dir: StateDirOpt = None,
    ) -> None:
        """The highest load at which the SLAs still hold: the profile's steps in turn, up to the first that breaks."""
        if url is not None and env is not None:
            raise ConfigError("drill bench", "give --env or --url, not both")
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError("--workers", f"{workers} generator processes: give 1 to {MAX_WORKERS}")
        if not 0 <= warmup < 0.9:
            raise ConfigError("--warmup", "a share of each step within [0, 0.9)")
        slas = slas_for(load_sla_file(sla), "bench", str(sla or "experiments/slas.yaml"))
        if url is not None:
            host, target = url.rstrip("/"), url
        else:
            name = env or "sandbox"
            if not is_up(name, state_dir=state_dir):
                raise EnvironmentFailure(f"{name} is not up: `drill env up --env {name}` first")
            host, target = resolve_target(name, state_dir=state_dir).endpoints().api_url.rstrip("/"), name
        clock = Clock()
        run_dir = open_run_dir(out, "bench", clock)
        _say(f"bench {run_dir.name}: profile {profile} against {target}")
        result = run_bench(profile, host, run_dir, slas, locustfile=locustfile or ("ping" if url else "trader"),
                           processes=workers, warmup=warmup, target=target, clock=clock, say=_say)  # fmt: skip
        report = write_bench_report(run_dir, result.to_dict(), warmup=warmup, stable_ratio=STABLE_RATIO)
        if result.knee_rps is None:
            _say(f"no knee: the first step did not hold ({result.stopped_because}); report: {report}")
            raise typer.Exit(EXIT_INCONCLUSIVE if result.stopped_because == "saturated" else EXIT_FAILED)
        upper = (f", below {result.knee_upper_rps:g} req/s (± {result.bound_rps:g})" if result.knee_upper_rps
                 else " at least (every step held)")  # fmt: skip
        _say(f"knee: {result.knee_rps:g} req/s{upper}; stopped: {result.stopped_because}; report: {report}")
