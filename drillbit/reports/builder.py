"""``build(run_dir)``: report.html, summary.json, junit.xml and summary.md from a run directory alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from drillbit.core.errors import ConfigError
from drillbit.core.redact import Redactor
from drillbit.core.safeio import write_text
from drillbit.reports.analysis import analyze
from drillbit.reports.html import render_report
from drillbit.reports.junit import render_junit
from drillbit.reports.markdown import render_markdown
from drillbit.reports.rundata import RunData, load_run
from drillbit.reports.summary import Summary, summarize

__all__ = ["build", "build_summary"]

log = logging.getLogger(__name__)


def _write(path: Path, text: str) -> Path:
    return write_text(path, text)


def _scrub(data: RunData, name: str, text: str) -> str:
    """Last line of defence: a secret that reached an output anyway (it should not) is masked there too."""
    leaked = [v for v in data.redactor.values if v in text]
    if leaked:
        log.warning("%s: %d secret value(s) survived redaction of the inputs: masking them in the output",
                    name, len(leaked))  # fmt: skip
        text = data.redactor.text(text)
    return text


def _check_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "not a run directory (no such directory): give runs/<id>")


def build_summary(run_dir: Path, *, redactor: Redactor | None = None) -> Summary:
    """The summary of a run directory without writing anything (cheap: no request records are read
    unless measurements.json lacks latency figures)."""
    run_dir = Path(run_dir)
    _check_dir(run_dir)
    data = load_run(run_dir, redactor, hash_files=False)
    latency = None
    if not (data.measurements is not None and data.measurements.latency) and data.has_requests:
        latency = analyze(data).latency
    return summarize(data, latency)


def build(run_dir: Path, *, redactor: Redactor | None = None) -> list[Path]:
    """Write report.html, summary.json, junit.xml and summary.md into ``run_dir``; returns their paths.

    Reads only the run directory; renders whatever exists (an interrupted drill's directory too)
    and says what is missing. ``redactor``: masks secrets in everything written (default: secret
    env vars of this process and the secrets the experiment declares).
    """
    run_dir = Path(run_dir)
    _check_dir(run_dir)
    data = load_run(run_dir, redactor)
    analysis = analyze(data)
    summary = summarize(data, analysis.latency)
    summary_text = json.dumps(summary.model_dump(mode="json", by_alias=True), indent=2, allow_nan=False) + "\n"
    outputs = {
        "report.html": render_report(data, summary, analysis),
        "summary.json": summary_text,
        "junit.xml": render_junit(summary),
        "summary.md": render_markdown(summary),
    }
    written = [_write(run_dir / name, _scrub(data, name, text)) for name, text in outputs.items()]
    log.info("report for %s: %s", data.run_id, ", ".join(p.name for p in written))
    return written
