"""Read a run directory for reporting: every file that exists, validated, redacted; what is missing, said.

A report must render for any run directory, including one a crash cut short: every reader here
returns ``None`` for a file that is absent and records a *problem* (file: what is wrong) for a
file that exists but cannot be read, instead of raising. Every JSON document is passed through the
redactor as it is read, so nothing rendered from it can carry a secret.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drillbit.core.errors import ConfigError, DrillError, validation_problems
from drillbit.core.events import read_events
from drillbit.core.redact import Redactor, experiment_secret_values, secret_values
from drillbit.core.results import JOURNAL, MEASUREMENTS, RUN, VERDICTS, Measurements, RunInfo, VerdictSet
from drillbit.core.rundir import AVAILABILITY, EVENTS, HEARTBEAT, HEARTBEAT_READBACK, LOAD_META, REPLICAS, REQUESTS_DIR
from drillbit.core.safeio import Tree, open_regular, read_text, walk
from drillbit.core.yamlio import parse_json

__all__ = [
    "EVIDENCE_FILES",
    "OUTPUTS",
    "FileEntry",
    "RunData",
    "default_redactor",
    "file_sha256",
    "list_files",
    "load_run",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: what ``reports.build`` writes into the run directory
OUTPUTS = ("report.html", "summary.json", "junit.xml", "summary.md")
#: what ``drillbit.reports.evidence.seal`` writes
EVIDENCE_FILES = ("MANIFEST", "MANIFEST.sig")
#: the files a complete drill leaves, in the order the report lists what is missing
EXPECTED = (RUN, EVENTS, JOURNAL, MEASUREMENTS, VERDICTS, LOAD_META, REQUESTS_DIR + "/", AVAILABILITY, HEARTBEAT,
            HEARTBEAT_READBACK, REPLICAS)  # fmt: skip
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the run directory, "/" separated
    size: int
    sha256: str


def file_sha256(path: Path, root: Path | None = None) -> str:
    """sha256 of a regular file (never a FIFO, a device or a symlink; see ``drillbit.core.safeio``)."""
    h = hashlib.sha256()
    with open_regular(path, root=root) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def list_files(run_dir: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Every regular file under ``run_dir`` (recursively, symlinks not followed), sorted, minus ``exclude``;
    anything else (symlinks, FIFOs, sockets, devices) is left out (``drillbit.core.safeio.walk`` reports it)."""
    return list(walk(run_dir, exclude).files.values())


def _journal_secret_values(journal: Mapping[str, Any] | None) -> set[str]:
    """Secret values the journal's experiment names: inline values, and env-sourced ones resolved here."""
    experiment = journal.get("experiment") if isinstance(journal, Mapping) else None
    return experiment_secret_values(experiment.get("secrets") if isinstance(experiment, Mapping) else None)


def default_redactor(journal: Mapping[str, Any] | None = None) -> Redactor:
    """Secret env vars of this process plus the secrets the experiment declares (see ``drillbit.core.redact``)."""
    return Redactor(secret_values() | _journal_secret_values(journal))


@dataclass
class RunData:
    """Everything a report shows, as read from one run directory (already redacted)."""

    run_dir: Path
    redactor: Redactor
    run: RunInfo | None = None
    measurements: Measurements | None = None
    verdicts: VerdictSet | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    journal: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    sidecars: dict[str, dict[str, Any]] = field(default_factory=dict)  # samples/x.parquet -> its .json
    missing: list[str] = field(default_factory=list)  # expected files that are absent
    problems: list[str] = field(default_factory=list)  # "file: why it could not be read"
    files: list[FileEntry] = field(default_factory=list)  # the evidence appendix
    tree: Tree = field(default_factory=Tree)  # regular files found, and what was skipped (never opened)

    @property
    def has_requests(self) -> bool:
        """Request records to read: regular Parquet files, and nothing else under requests/ (the
        reader globs the folder, so a FIFO there would block it)."""
        prefix = REQUESTS_DIR + "/"
        if REQUESTS_DIR in self.tree.skipped or any(k.startswith(prefix) for k in self.tree.skipped):
            return False
        return any(k.startswith(prefix) and k.endswith(".parquet") for k in self.tree.files)

    def has_samples(self, name: str) -> bool:
        """Samples to read: the file or its journal is a regular file, and neither is anything else."""
        journal = name + ".journal"
        if name in self.tree.skipped or journal in self.tree.skipped:
            return False
        return name in self.tree.files or journal in self.tree.files

    @property
    def run_id(self) -> str:
        return self.run.id if self.run is not None else self.run_dir.name

    def text(self, value: object) -> str:
        return self.redactor.text(str(value))


def _is_time(t: object) -> bool:
    return isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)


def _read_json_file(run_dir: Path, name: str) -> Any:
    """The JSON document ``run_dir/name`` (None when absent); ConfigError when unreadable."""
    try:
        return parse_json(read_text(run_dir / name, root=run_dir), name, allow_nan=True)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as err:
        raise ConfigError(name, f"unreadable ({os.strerror(err.errno or 0)})") from None


def _read_json(data: RunData, name: str) -> Any:
    if name in data.tree.skipped:
        return None  # reported once, by load_run
    try:
        raw = _read_json_file(data.run_dir, name)
    except ConfigError as err:
        data.problems.append(data.text(f"{name}: unreadable ({'; '.join(err.problems)})"))
        return None
    except DrillError as err:
        data.problems.append(data.text(f"{name}: unreadable ({err})"))
        return None
    return data.redactor(raw)


def _read_model(data: RunData, name: str, model: type[M]) -> M | None:
    raw = _read_json(data, name)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        data.problems.append(f"{name}: does not match the contract: " + "; ".join(validation_problems(err)))
        return None


def load_run(run_dir: Path, redactor: Redactor | None = None, *, hash_files: bool = True) -> RunData:
    """Read ``run_dir``; never raises for a missing or broken file (see the module docstring)."""
    run_dir = Path(run_dir)
    journal_raw: Any = None
    if redactor is None:
        try:
            journal_raw = _read_json_file(run_dir, JOURNAL)
        except DrillError:
            journal_raw = None  # reported below, when read through the redactor
        redactor = default_redactor(journal_raw if isinstance(journal_raw, Mapping) else None)
    data = RunData(run_dir=run_dir, redactor=redactor, tree=walk(run_dir))
    for rel, kind in data.tree.skipped.items():
        data.problems.append(data.text(f"{rel}: {kind}, not a regular file: skipped (not read, not evidence)"))
    data.run = _read_model(data, RUN, RunInfo)
    data.measurements = _read_model(data, MEASUREMENTS, Measurements)
    data.verdicts = _read_model(data, VERDICTS, VerdictSet)
    journal = _read_json(data, JOURNAL)
    data.journal = journal if isinstance(journal, dict) else None
    load = _read_json(data, LOAD_META)
    data.load = load if isinstance(load, dict) else None
    if EVENTS in data.tree.files:
        try:
            events = redactor(read_events(run_dir / EVENTS))
            data.events = [e for e in events if isinstance(e, dict) and _is_time(e.get("t"))]
            if len(data.events) < len(events):
                skipped = len(events) - len(data.events)
                data.problems.append(f"{EVENTS}: {skipped} event(s) without a numeric time skipped")
        except (OSError, UnicodeDecodeError, DrillError) as err:
            data.problems.append(f"{EVENTS}: unreadable ({data.text(err)})")
    for sample in (AVAILABILITY, REPLICAS, HEARTBEAT):
        meta = _read_json(data, str(Path(sample).with_suffix(".json").as_posix()))
        if isinstance(meta, dict):
            data.sidecars[sample] = meta
    for name in EXPECTED:
        if name.endswith("/"):
            present = data.has_requests
        elif name.endswith(".parquet"):
            present = data.has_samples(name)
        else:
            present = name in data.tree.files
        if not present:
            data.missing.append(name + "*.parquet" if name.endswith("/") else name)
    if hash_files:
        for rel, p in data.tree.files.items():
            if rel in OUTPUTS + EVIDENCE_FILES:
                continue
            try:
                data.files.append(FileEntry(data.text(rel), p.stat().st_size, file_sha256(p, run_dir)))
            except (OSError, DrillError) as err:
                data.problems.append(f"{rel}: unreadable ({data.text(err)})")
    return data
