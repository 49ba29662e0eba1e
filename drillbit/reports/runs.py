"""Find run directories and read their summaries (for trends and comparisons)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from drillbit.core.errors import ConfigError
from drillbit.core.redact import Redactor
from drillbit.core.results import RUN
from drillbit.reports.builder import build_summary
from drillbit.reports.summary import Summary, read_summary

__all__ = ["expand_runs", "load_summary"]

log = logging.getLogger(__name__)


def _is_run(p: Path) -> bool:
    return p.is_dir() and ((p / RUN).is_file() or (p / "summary.json").is_file())


def expand_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories named, or found one level under a directory named (e.g. ``runs/``)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise ConfigError(str(p), "no such run directory")
        if _is_run(p):
            out.append(p)
            continue
        children = sorted(c for c in p.iterdir() if _is_run(c))
        if not children:
            raise ConfigError(str(p), "neither a run directory (no run.json) nor a directory of runs")
        out.extend(children)
    return out


def load_summary(run_dir: Path, redactor: Redactor | None = None) -> Summary:
    """summary.json when the run has one (validated against the schema), else computed from the run directory."""
    path = Path(run_dir) / "summary.json"
    if os.path.lexists(path):
        return read_summary(path)

    log.info("%s has no summary.json: computing it", run_dir)
    return build_summary(Path(run_dir), redactor=redactor)
