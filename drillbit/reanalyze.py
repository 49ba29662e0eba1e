"""``drill analyze RUN_DIR [--sla FILE]``: measurements and verdicts recomputed from a run's raw records.

No target is needed: the analysis reads only the run directory (events, samples, requests). By
default the run is judged by its own SLAs (``slas.json``, as resolved when it ran); ``--sla``
re-judges it by another SLA file (an auditor holding a quarterly drill to stricter targets).

Nothing the run sealed is touched: the results go to ``RUN_DIR/analysis/<UTC time>/``
(``measurements.json``, ``verdicts.json``, ``slas.json``, a ``run.json`` whose outcome is the new
one, and the report rendered from them), with the raw records linked in (symlinks, not copies)
so the report is drawn from the very same data. ``drill verify`` leaves ``analysis/`` out of the
sealed evidence; each analysis directory is sealed on its own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drillbit.analysis import STABILITY_WINDOW_S, analyze
from drillbit.core.errors import ConfigError
from drillbit.core.results import MEASUREMENTS, RUN, VERDICTS, RunInfo, RunStatus, VerdictSet, read_model, write_model
from drillbit.core.rundir import ANALYSIS_DIR
from drillbit.runs import SLAS, read_slas, render_and_seal, write_slas
from drillbit.sla import Sla, load_sla_file, slas_for
from drillbit.verdicts import evaluate

__all__ = ["Reanalysis", "reanalyze"]

log = logging.getLogger(__name__)

#: what a re-analysis writes itself; everything else of the run is linked in
_OWN = {MEASUREMENTS, VERDICTS, RUN, SLAS, "report.html", "summary.json", "junit.xml", "summary.md", "MANIFEST",
        "MANIFEST.sig", ANALYSIS_DIR}  # fmt: skip


@dataclass(frozen=True)
class Reanalysis:
    out: Path
    verdicts: VerdictSet
    sla_source: str


def _slas(run_dir: Path, info: RunInfo, sla_file: Path | None) -> tuple[dict[str, Sla], str]:
    if sla_file is None:
        slas = read_slas(run_dir)
        if not slas:
            raise ConfigError(str(run_dir / SLAS), "the run recorded no SLAs: pass --sla FILE to judge it")
        return slas, f"the run's own SLAs ({SLAS})"
    experiment = Path(info.experiment.path).stem if info.experiment else info.id.split("-", 1)[-1]
    # the run's load adjusts the file's SLAs as it did when it ran (the file's locustfiles:; a run
    # recorded before run.json named its locustfile gets no adjustment)
    return (slas_for(load_sla_file(sla_file), experiment, str(sla_file), locustfile=info.locustfile,
                     profile=info.profile), str(sla_file))  # fmt: skip


def _link_raw(run_dir: Path, out: Path) -> None:
    """The run's raw records, linked into ``out`` (relative links: the run directory can move)."""
    for item in sorted(run_dir.iterdir()):
        if item.name in _OWN or item.name.endswith(".tmp"):
            continue
        os.symlink(os.path.relpath(item, out), out / item.name)


def reanalyze(run_dir: Path, sla_file: Path | None = None, stability_s: float = STABILITY_WINDOW_S) -> Reanalysis:
    """Recompute ``run_dir``'s measurements and verdicts into a new ``analysis/<time>/`` directory."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN).is_file():
        raise ConfigError(str(run_dir), "not a run directory (no run.json): give runs/<id>")
    info = read_model(run_dir / RUN, RunInfo)
    slas, source = _slas(run_dir, info, sla_file)
    measurements = analyze(run_dir, slas, stability_s, convert_journals=False)
    verdicts = evaluate(measurements, slas, interrupted=info.status is not RunStatus.COMPLETED)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    out = run_dir / ANALYSIS_DIR / stamp
    out.mkdir(parents=True)
    _link_raw(run_dir, out)
    write_model(out / MEASUREMENTS, measurements)
    write_model(out / VERDICTS, verdicts)
    write_slas(out, slas)
    note = f"re-analysed {stamp} from the raw records by `drill analyze`, judged by {source}"
    write_model(out / RUN, info.model_copy(update={"outcome": verdicts.outcome, "exit_code": verdicts.exit_code,
                                                   "notes": [*info.notes, note]}))  # fmt: skip
    render_and_seal(out, None)
    log.info("%s: %s", out, verdicts.outcome.value)
    return Reanalysis(out=out, verdicts=verdicts, sla_source=source)
