"""The ``drill`` command line. Bad input: one line naming the file/field/fix and exit 2."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from drillbit.cli_analyze import register as register_analyze
from drillbit.cli_observe import register as register_observe
from drillbit.cli_run import register as register_run
from drillbit.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, ConfigError, DrillError

__all__ = ["app", "main"]

log = logging.getLogger("drillbit")

KNOWN_ENVS = ("sandbox",)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="drillbit: chaos and resilience drills that measure RTO, RPO and latency SLAs.",
)
env_app = typer.Typer(no_args_is_help=True, help="Bring a target environment up or down and inject faults into it.")
app.add_typer(env_app, name="env")

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Target environment: sandbox.")]
StateOpt = Annotated[
    Path | None, typer.Option("--state-dir", help="Where environment state lives (default .drill or $DRILL_STATE_DIR).")
]


def _check_env(env: str) -> None:
    if env not in KNOWN_ENVS:
        raise ConfigError("--env", f"unknown environment {env!r}: use one of {', '.join(KNOWN_ENVS)}")


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
) -> None:
    """Start the environment (cleans up a stale one first)."""
    _check_env(env)
    from drillbit.targets.sandbox import sandbox

    sb = sandbox.up(topology, state_dir, report=_say)
    _print_json({"id": sb.state.id, "front_door": sb.front_door_url, "dsn": sb.dsn, "primary": sb.primary()})


@env_app.command("status")
def env_status(env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Show processes, primary database node and replicas."""
    _check_env(env)
    from drillbit.targets.sandbox.sandbox import Sandbox

    _print_json(Sandbox.attach(state_dir).status())


@env_app.command("down")
def env_down(env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Stop the environment: no process, port or lock left behind."""
    _check_env(env)
    from drillbit.targets.sandbox import sandbox

    sandbox.down(state_dir, report=_say)


@env_app.command("kill-replicas")
def env_kill_replicas(
    count: Annotated[int | None, typer.Option(help="How many API replicas to SIGKILL.")] = None,
    percent: Annotated[float | None, typer.Option(help="Or what share of them, in percent.")] = None,
    region: Annotated[str | None, typer.Option(help="Only in this region.")] = None,
    env: EnvOpt = "sandbox",
    state_dir: StateOpt = None,
) -> None:
    """SIGKILL API replicas; the supervisor restarts them."""
    _check_env(env)
    from drillbit.targets.sandbox.sandbox import Sandbox

    _print_json(Sandbox.attach(state_dir).kill_replicas(count, percent=percent, region=region))


@env_app.command("kill-region")
def env_kill_region(region: str, env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Lose a whole region: its API replicas and its database node."""
    _check_env(env)
    from drillbit.targets.sandbox.sandbox import Sandbox

    _print_json(Sandbox.attach(state_dir).kill_region(region))


@env_app.command("restore-region")
def env_restore_region(region: str, env: EnvOpt = "sandbox", state_dir: StateOpt = None) -> None:
    """Bring a lost region back."""
    _check_env(env)
    from drillbit.targets.sandbox.sandbox import Sandbox

    _print_json(Sandbox.attach(state_dir).restore_region(region))


@env_app.command("failover")
def env_failover(
    mode: Annotated[str, typer.Option(help="kill-node | kill-postgres | switchover")] = "kill-node",
    env: EnvOpt = "sandbox",
    state_dir: StateOpt = None,
) -> None:
    """Fail the database over to another region."""
    _check_env(env)
    from drillbit.targets.sandbox.sandbox import Sandbox

    if mode not in ("kill-node", "kill-postgres", "switchover"):
        raise ConfigError("--mode", f"unknown failover mode {mode!r}: use kill-node, kill-postgres or switchover")
    _print_json(Sandbox.attach(state_dir).failover_db(mode))  # type: ignore[arg-type]


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
    _check_env(env)
    from drillbit.targets.sandbox import sandbox

    sb = sandbox.up(topology, state_dir, report=_say)
    try:
        _say(f"placing orders through the front door {sb.front_door_url}:")
        with httpx.Client(base_url=sb.front_door_url, timeout=5.0) as client:
            _place(client, "buy", "100.00", 10)
            _place(client, "buy", "99.50", 5)
            _place(client, "sell", "101.00", 7)
            _place(client, "sell", "99.00", 12)  # crosses both bids: 10 @ 100.00, 2 @ 99.50
            book = client.get("/book/DRILL").json()
            md = client.get("/marketdata/DRILL").json()
        _say(f"book DRILL: bids {book['bids']} asks {book['asks']}")
        _say(f"market data: last trade {md['last_trade']}, best bid {md['best_bid']}, best ask {md['best_ask']}")
        _say(f"replicas: {sb.replicas()}; primary database node: {sb.primary()}")
    finally:
        if not keep:
            sandbox.down(state_dir, report=_say)



register_run(app)
register_observe(app)
register_analyze(app)

# --- reports and evidence: `drill report ...`, `drill seal`, `drill verify` (defined in reports/cli.py) ---
def _register_reports() -> None:
    from reports.cli import register

    register(app)


_register_reports()
# --- end reports ---

def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _configure_logging(debug)
    try:
        code = app(args=args, prog_name="drill", standalone_mode=False)  # click returns an Exit's code here
        if isinstance(code, int) and code:
            return code
    except DrillError as err:
        if debug:
            raise
        typer.echo(f"drill: error: {err}", err=True)
        return err.exit_code
    except typer.Abort:
        typer.echo("drill: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("drill: interrupted", err=True)
        return 130
    except typer.Exit as e:
        return int(e.exit_code)
    except Exception as err:  # usage errors and the unexpected: one line, not a traceback
        message = getattr(err, "format_message", None)
        if message is not None:  # typer's (vendored click) UsageError / ClickException
            typer.echo(f"drill: error: {message()}", err=True)
            return int(getattr(err, "exit_code", EXIT_CONFIG))
        if debug:
            raise
        typer.echo(f"drill: internal error: {type(err).__name__}: {err} (rerun with --debug for a traceback)", err=True)
        return EXIT_ENVIRONMENT
    return 0


if __name__ == "__main__":
    sys.exit(main())
