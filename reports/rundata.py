"""Read a run directory for reporting: every file that exists, validated, redacted; what is missing, said.

A report must render for any run directory, including one a crash cut short: every reader here
returns ``None`` for a file that is absent and records a *problem* (file: what is wrong) for a
file that exists but cannot be read, instead of raising. Every JSON document is passed through the
redactor as it is read, so nothing rendered from it can carry a secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drillbit.errors import validation_problems
from drillbit.events import read_events
from drillbit.redact import Redactor, secret_values
from drillbit.results import JOURNAL, MEASUREMENTS, RUN, VERDICTS, Measurements, RunInfo, VerdictSet
from drillbit.rundir import AVAILABILITY, EVENTS, HEARTBEAT, HEARTBEAT_READBACK, LOAD_META, REPLICAS, REQUESTS_DIR

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
#: what ``reports.evidence.seal`` writes
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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def list_files(run_dir: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Every regular file under ``run_dir`` (recursively, symlinks not followed), sorted, minus ``exclude``."""
    out = []
    for root, dirs, files in os.walk(run_dir):
        dirs.sort()
        for name in files:
            p = Path(root) / name
            rel = p.relative_to(run_dir).as_posix()
            if rel not in exclude:
                out.append(p)
    return sorted(out, key=lambda p: p.relative_to(run_dir).as_posix())


def _journal_secret_values(journal: Mapping[str, Any] | None) -> set[str]:
    """Secret values the journal's experiment names: inline values, and env-sourced ones resolved here."""
    experiment = journal.get("experiment") if isinstance(journal, Mapping) else None
    secrets = experiment.get("secrets") if isinstance(experiment, Mapping) else None
    if not isinstance(secrets, Mapping):
        return set()
    values: set[str] = set()
    for scope in secrets.values():
        if not isinstance(scope, Mapping):
            continue
        for value in scope.values():
            if isinstance(value, str):
                values.add(value)
            elif isinstance(value, Mapping) and value.get("type") == "env" and isinstance(value.get("key"), str):
                resolved = os.environ.get(value["key"])
                if resolved:
                    values.add(resolved)
    return values


def default_redactor(journal: Mapping[str, Any] | None = None) -> Redactor:
    """Secret env vars of this process plus the secrets the experiment declares (see ``drillbit.redact``)."""
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

    @property
    def has_requests(self) -> bool:
        d = self.run_dir / REQUESTS_DIR
        return d.is_dir() and any(d.glob("*.parquet"))

    def has_samples(self, name: str) -> bool:
        path = self.run_dir / name
        return path.exists() or path.with_name(path.name + ".journal").exists()

    @property
    def run_id(self) -> str:
        return self.run.id if self.run is not None else self.run_dir.name

    def text(self, value: object) -> str:
        return self.redactor.text(str(value))


def _is_time(t: object) -> bool:
    return isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)


def _read_json(data: RunData, name: str) -> Any:
    path = data.run_dir / name
    if not path.exists():
        return None
    try:
        return data.redactor(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        data.problems.append(f"{name}: unreadable ({data.text(err)})")
        return None


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
        path = run_dir / JOURNAL
        try:
            journal_raw = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            journal_raw = None  # reported below, when read through the redactor
        redactor = default_redactor(journal_raw if isinstance(journal_raw, Mapping) else None)
    data = RunData(run_dir=run_dir, redactor=redactor)
    data.run = _read_model(data, RUN, RunInfo)
    data.measurements = _read_model(data, MEASUREMENTS, Measurements)
    data.verdicts = _read_model(data, VERDICTS, VerdictSet)
    journal = _read_json(data, JOURNAL)
    data.journal = journal if isinstance(journal, dict) else None
    load = _read_json(data, LOAD_META)
    data.load = load if isinstance(load, dict) else None
    if (run_dir / EVENTS).exists():
        try:
            events = redactor(read_events(run_dir / EVENTS))
            data.events = [e for e in events if isinstance(e, dict) and _is_time(e.get("t"))]
            if len(data.events) < len(events):
                skipped = len(events) - len(data.events)
                data.problems.append(f"{EVENTS}: {skipped} event(s) without a numeric time skipped")
        except (OSError, UnicodeDecodeError) as err:
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
            present = (run_dir / name).exists()
        if not present:
            data.missing.append(name + "*.parquet" if name.endswith("/") else name)
    if hash_files:
        for p in list_files(run_dir, exclude=OUTPUTS + EVIDENCE_FILES):
            rel = p.relative_to(run_dir).as_posix()
            try:
                data.files.append(FileEntry(data.text(rel), p.stat().st_size, file_sha256(p)))
            except OSError as err:
                data.problems.append(f"{rel}: unreadable ({data.text(err)})")
    return data
