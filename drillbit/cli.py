"""The ``drill`` command line. Bad input: one line naming the file/field/fix and exit 2."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from drillbit import targets
from drillbit.cli_analyze import register as register_analyze
from drillbit.cli_bench import register as register_bench
from drillbit.cli_manifests import register as register_manifests
from drillbit.cli_observe import register as register_observe
from drillbit.cli_run import StateDirOpt
from drillbit.cli_run import register as register_run
from drillbit.core.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, ConfigError, DrillError
from drillbit.core.project import PROJECT_ENV, find_project, init_project
from drillbit.core.redact import Redactor, secret_values
from drillbit.experiment import argument_problems
from drillbit.reports.cli import register as register_reports

__all__ = ["app", "main"]

log = logging.getLogger("drillbit")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="drillbit: chaos and resilience drills that measure RTO, RPO and latency SLAs.",
)
env_app = typer.Typer(no_args_is_help=True, help="Bring a target environment up or down and inject faults into it.")
app.add_typer(env_app, name="env")

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Target: sandbox or a name from drill.yaml.")]
StateOpt = StateDirOpt


@app.callback()
def _global(
    project: Annotated[
        Path | None,
        typer.Option("--project", help="The drill project (default: the nearest drill.yaml upward, else the "
                                       "defaults drillbit ships)."),
    ] = None,
) -> None:  # fmt: skip
    if project is not None:
        os.environ[PROJECT_ENV] = str(find_project(project).root)  # every subprocess sees the same project


def _check_arguments(command: str, fault: str, **options: object) -> None:
    """The options of an `env` fault command, by the same rules as the fault's arguments in an experiment."""
    problems = argument_problems(fault, {k: v for k, v in options.items() if v is not None}, "")
    if problems:  # ".count: ..." names an option; ": ..." the command as a whole
        raise ConfigError(command, ["--" + p[1:] if p.startswith(".") else p[2:] for p in problems])


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@env_app.command("up")
def env_up(
    env: EnvOpt = "sandbox",
    topology: Annotated[
        Path | None, typer.Option(help="Sandbox topology (default infra/sandbox/topology.yaml).")
    ] = None,
    state_dir: StateOpt = None,
    with_monitoring: Annotated[bool | None, typer.Option(
        "--with-monitoring/--without-monitoring",
        help="The sandbox with real Prometheus and Alertmanager (infra/monitoring); default: as the topology says.",
    )] = None,
    with_backups: Annotated[bool | None, typer.Option(
        "--with-backups/--without-backups",
        help="The sandbox archiving its WAL and base backups to an S3 bucket on loopback (pitr-restore); "
             "default: as the topology says.",
    )] = None,
) -> None:
    """Start the environment (cleans up a stale one first)."""
    target = targets.env_up(env, state_dir=state_dir, report=_say, topology=topology, monitoring=with_monitoring,
                            backups=with_backups)  # fmt: skip
    _print_json({"target": target.name, "kind": target.kind, **target.fingerprint(),
                 "api_url": target.endpoints().api_url, "primary": target.primary_region()})  # fmt: skip


@env_app.command("status")
def env_status(env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Show processes, primary database node and replicas."""
    _print_json(targets.env_status(env, state_dir=state_dir))


@env_app.command("down")
def env_down(env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Stop the environment: no process, port or lock left behind."""
    targets.env_down(env, state_dir=state_dir, report=_say)


@env_app.command("drift")
def env_drift(env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Compare the environment with its definition (Terraform: plan -detailed-exitcode): exit 0 in sync,
    1 drifted (each changed resource named on stderr)."""
    found = targets.resolve(env)
    drift = getattr(found.kind, "drift", None)
    if drift is None:
        raise ConfigError("--env", f"{env} is a {found.kind.name} target: only an environment drillbit provisions "
                                   "from a definition (kind terraform) can drift from it")  # fmt: skip
    found.kind.check_identity(found.name, found.spec, found.source)
    result = drift(found.name, found.spec, state_dir, _say)
    _print_json(result)
    if result.get("drift"):
        raise typer.Exit(1)


@env_app.command("kill-replicas")
def env_kill_replicas(
    count: Annotated[int | None, typer.Option(help="How many API replicas to SIGKILL.")] = None,
    percent: Annotated[float | None, typer.Option(help="Or what share of them, in percent.")] = None,
    region: Annotated[str | None, typer.Option(help="Only in this region.")] = None,
    env: EnvOpt = "sandbox",
    state_dir: StateOpt = None,
) -> None:
    """SIGKILL API replicas; the supervisor restarts them."""
    _check_arguments("drill env kill-replicas", "kill_replicas", count=count, percent=percent, region=region)
    _print_json(targets.resolve_target(env, state_dir=state_dir).kill_replicas(count, percent=percent, region=region))


@env_app.command("kill-region")
def env_kill_region(region: str, env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Lose a whole region: its API replicas and its database node."""
    _print_json(targets.resolve_target(env, state_dir=state_dir).lose_region(region))


@env_app.command("restore-region")
def env_restore_region(region: str, env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Bring a lost region back."""
    _print_json(targets.resolve_target(env, state_dir=state_dir).restore_region(region))


@env_app.command("failover")
def env_failover(
    mode: Annotated[str, typer.Option(help="kill-node | kill-postgres | switchover")] = "kill-node",
    env: EnvOpt = "sandbox",
    state_dir: StateOpt = None,
) -> None:
    """Fail the database over to another region."""
    _check_arguments("drill env failover", "fail_over_database", mode=mode)
    _print_json(targets.resolve_target(env, state_dir=state_dir).fail_over_database(mode))


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the project (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite files that already exist.")] = False,
) -> None:
    """Write a starter drill project (drill.yaml, experiments/, loadtests/, probes/, the SLA file and
    the sandbox topology) that runs as it is against the sandbox."""
    written = init_project(directory, force=force)
    _say(f"wrote a drill project in {directory} ({len(written)} files): try")
    _say(f"  cd {directory} && drill run experiments/pod-kill.yaml --env sandbox")


def _place(client: httpx.Client, side: str, price: str, qty: int) -> dict[str, Any]:
    body = {"symbol": "DRILL", "side": side, "price": price, "qty": qty, "client_order_id": uuid.uuid4().hex}
    r = client.post("/orders", json=body)
    r.raise_for_status()
    order: dict[str, Any] = r.json()
    fills = ", ".join(f"{f['qty']} @ {f['price']}" for f in order.get("fills", [])) or "none"
    _say(
        f"  {side:4} {qty:>3} @ {price:>7} -> order {order['id']} {order['status']:<16} fills: {fills}"
        f"  (replica {r.headers.get('x-drill-replica', '?')})"
    )
    return order


@app.command("demo")
def demo(
    env: EnvOpt = "sandbox",
    topology: Annotated[Path | None, typer.Option(help="Sandbox topology file.")] = None,
    state_dir: StateOpt = None,
    keep: Annotated[bool, typer.Option(help="Leave the sandbox up afterwards.")] = False,
) -> None:
    """Bring the sandbox up, place and match a few orders through the front door, bring it down."""
    target = targets.env_up(env, state_dir=state_dir, report=_say, topology=topology)
    try:
        url = target.endpoints().api_url
        _say(f"placing orders through the front door {url}:")
        with httpx.Client(base_url=url, timeout=5.0) as client:
            _place(client, "buy", "100.00", 10)
            _place(client, "buy", "99.50", 5)
            _place(client, "sell", "101.00", 7)
            _place(client, "sell", "99.00", 12)  # crosses both bids: 10 @ 100.00, 2 @ 99.50
            book = client.get("/book/DRILL").json()
            md = client.get("/marketdata/DRILL").json()
        _say(f"book DRILL: bids {book['bids']} asks {book['asks']}")
        _say(f"market data: last trade {md['last_trade']}, best bid {md['best_bid']}, best ask {md['best_ask']}")
        _say(f"replicas: {target.replicas()}; primary database node: {target.primary_region()}")
    finally:
        if not keep:
            targets.env_down(env, state_dir=state_dir, report=_say)



register_run(app)
register_observe(app)
register_analyze(app)
register_bench(app)
register_manifests(app)

register_reports(app)  # `drill report ...`, `drill seal`, `drill verify` (drillbit/reports/cli.py)
# --- end reports ---

def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _usable_columns() -> None:
    """A terminal width the help can be drawn in: COLUMNS that is not a number of at least 40 is dropped."""
    columns = os.environ.get("COLUMNS")
    if columns is not None and not (columns.isdigit() and int(columns) >= 40):
        del os.environ["COLUMNS"]


def _error(message: str, *, label: str = "error") -> None:
    """One line on stderr, secrets masked (env, experiment secrets, URL userinfo/query/fragment)."""
    line = " ".join(Redactor(secret_values()).text(message).split())
    typer.echo(f"drill: {label}: {line}", err=True)


def _usage_error(err: Exception) -> int:
    """typer's (vendored click) UsageError / ClickException: one line; for a missing command the
    help was already printed, so say only what to do."""
    if type(err).__name__ == "NoArgsIsHelpError":
        ctx = getattr(err, "ctx", None)
        path = ctx.command_path if ctx is not None else "drill"
        _error(f"{path}: give a command (listed above)")
        return EXIT_CONFIG
    message = getattr(err, "format_message")()  # noqa: B009  (present on every click exception)
    _error(message or type(err).__name__)
    return int(getattr(err, "exit_code", EXIT_CONFIG))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _configure_logging(debug)
    _usable_columns()
    try:
        code = app(args=args, prog_name="drill", standalone_mode=False)  # click returns an Exit's code here
        if isinstance(code, int) and code:
            return code
    except DrillError as err:
        if debug:
            raise
        _error(str(err))
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("drill: interrupted", err=True)
        return 130
    except typer.Exit as e:
        return int(e.exit_code)
    except PermissionError as err:  # the environment's: exit 4, naming the path
        if debug:
            raise
        _error(f"permission denied: {err.filename or err}")
        return EXIT_ENVIRONMENT
    except (RecursionError, UnicodeDecodeError) as err:  # input a loader let through: still the user's
        if debug:
            raise
        what = "nested too deeply" if isinstance(err, RecursionError) else "not UTF-8 text"
        _error(f"an input is {what}: fix it (rerun with --debug to see which)")
        return EXIT_CONFIG
    except Exception as err:  # usage errors and the unexpected: one line, not a traceback
        if hasattr(err, "format_message"):
            return _usage_error(err)
        if debug:
            raise
        _error(f"{type(err).__name__}: {err} (rerun with --debug for a traceback)", label="internal error")
        return EXIT_ENVIRONMENT
    return 0


if __name__ == "__main__":
    sys.exit(main())
