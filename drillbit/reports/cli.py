"""``drill report ...``, ``drill seal``, ``drill verify``: registered on the ``drill`` app by ``register``.

``drill report RUN_DIR`` rebuilds a run's report; ``drill report trend|compare|schema ...`` are
subcommands. A first argument that is not a subcommand's name is taken as a run directory (a run
directory literally named like a subcommand: ``drill report build ./trend``).

Exit codes: ``verify`` 0 intact / 1 tampered (each problem on its own line, naming the file);
``compare`` 0 ok / 1 regression / 3 inconclusive; bad input 2 (one line, from ``drill``'s main).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from drillbit.core.errors import EXIT_FAILED, EXIT_INCONCLUSIVE, DrillError
from drillbit.reports.benchreport import compare_knees, load_bench
from drillbit.reports.builder import build
from drillbit.reports.compare import compare, format_text
from drillbit.reports.evidence import read_manifest, seal, verify
from drillbit.reports.summary import load_schema
from drillbit.reports.trend import trend

__all__ = ["EvidenceTampered", "Regression", "register", "report_app"]


BENCH_JSON = "bench.json"  # drillbit.bench.BENCH


class EvidenceTampered(DrillError):
    """``drill verify`` found changed, added or removed files, or a bad signature."""

    exit_code = EXIT_FAILED


class Regression(DrillError):
    """``drill report compare``: the candidate is slower than the baseline allows."""

    exit_code = EXIT_FAILED


class ComparisonInconclusive(DrillError):
    exit_code = EXIT_INCONCLUSIVE


class _RunDirOrCommand(TyperGroup):
    """``drill report RUN_DIR`` means ``drill report build RUN_DIR``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's vendored click Context
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["build", *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_RunDirOrCommand,
    no_args_is_help=True,
    help="Reports: `drill report RUN_DIR` rebuilds report.html, summary.json, junit.xml and summary.md; "
    "`trend` and `compare` read several runs.",
)

RunDirArg = Annotated[Path, typer.Argument(help="A run directory (runs/<id>).", show_default=False)]


def _out(msg: str) -> None:
    typer.echo(msg)


@report_app.command("build")
def report_build(run_dir: RunDirArg) -> None:
    """Rebuild a run's report files from its run directory alone."""

    for path in build(run_dir):
        _out(str(path))


@report_app.command("trend")
def report_trend(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or directories holding them (runs/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML page to write.")] = Path("trend.html"),
) -> None:
    """One HTML page: RTO, RPO and p95 per experiment across drills, and pass/fail over time."""

    _out(str(trend(runs, out)))


@report_app.command("compare")
def report_compare(
    baseline: Annotated[Path, typer.Argument(help="The baseline run directory.")],
    candidate: Annotated[Path, typer.Argument(help="The candidate run directory.")],
    max_p95_regression_pct: Annotated[
        float, typer.Option("--max-p95-regression-pct", help="Regression: p95 worse by more than this, in any phase.")
    ] = 10.0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the comparison as HTML.")] = None,
    allow_different: Annotated[
        bool, typer.Option("--allow-different", help="Compare runs of different experiments anyway.")
    ] = False,
    max_knee_regression_pct: Annotated[
        float, typer.Option("--max-knee-regression-pct", help="Two capacity searches (drill bench): regression "
                                                              "when the knee is lower by more than this.")
    ] = 10.0,
) -> None:
    """Two runs of one experiment (or two capacity searches) side by side; exit 0 ok, 1 regression, 3 inconclusive."""

    if (baseline / BENCH_JSON).exists() or (candidate / BENCH_JSON).exists():
        knees = compare_knees(load_bench(baseline), load_bench(candidate), max_knee_regression_pct)
        _out(knees.text())
        if knees.regressed:
            raise Regression(f"{candidate}: capacity regressed against {baseline}: " + "; ".join(knees.reasons))
        return
    cmp = compare(baseline, candidate, max_p95_regression_pct=max_p95_regression_pct, out=out,
                  allow_different=allow_different)  # fmt: skip
    _out(format_text(cmp))
    if cmp.verdict == "REGRESSION":
        raise Regression(f"{candidate}: p95 regressed against {baseline} ({len(cmp.reasons)} phase(s))")
    if cmp.verdict == "INCONCLUSIVE":
        raise ComparisonInconclusive(f"{candidate} vs {baseline}: inconclusive: " + "; ".join(cmp.reasons))


@report_app.command("schema")
def report_schema() -> None:
    """Print the JSON schema of summary.json."""

    _out(json.dumps(load_schema(), indent=2, sort_keys=True))


ChainStartOpt = Annotated[
    bool, typer.Option("--allow-chain-start", help="Begin a new chain knowingly: no (or no readable) previous run.")
]


def seal_command(
    run_dir: RunDirArg,
    key: Annotated[Path | None, typer.Option("--key", help="PEM Ed25519 private key: also sign the MANIFEST.")] = None,
    allow_chain_start: ChainStartOpt = False,
) -> None:
    """Write the run's MANIFEST (sha256 of every file, chained to the previous sealed run), optionally signed."""

    path = seal(run_dir, key=key, allow_chain_start=allow_chain_start)
    m = read_manifest(run_dir)
    prev = (f"previous run {m.previous['run_id']}" if m.previous
            else "new chain (--allow-chain-start)" if m.chain_start else "first sealed run here")  # fmt: skip
    signed = f", signed by key {m.signed_by[:16]}…" if m.signed_by else ""
    skipped = f", {len(m.skipped)} entries skipped (not regular files)" if m.skipped else ""
    _out(f"{path}: {len(m.files)} files, sha256 {m.sha256}, {prev}{signed}{skipped}")


def verify_command(
    run_dir: RunDirArg,
    key: Annotated[Path | None, typer.Option("--key", help="PEM Ed25519 public key: also check the signature.")] = None,
    allow_chain_start: ChainStartOpt = False,
) -> None:
    """Check a sealed run: exit 0 intact; 1 with each changed, added or removed file, bad signature or
    missing/unreadable previous run named."""

    problems = verify(run_dir, public_key=key, allow_chain_start=allow_chain_start)
    if problems:
        for p in problems:
            _out(p)
        raise EvidenceTampered(f"{run_dir}: evidence does not verify ({len(problems)} problem(s))")
    _out(f"{run_dir}: intact" + (" (signature good)" if key is not None else ""))


def register(app: Any) -> None:
    """Add ``report``, ``seal`` and ``verify`` to the ``drill`` app."""
    app.add_typer(report_app, name="report")
    app.command("seal")(seal_command)
    app.command("verify")(verify_command)
