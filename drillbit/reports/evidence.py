"""Audit evidence: a MANIFEST of every file in a run directory, chained to the previous sealed run, optionally signed.

``MANIFEST`` (JSON, canonical: sorted keys, one file a line) holds the sha256 and size of every
file under the run directory except itself and ``MANIFEST.sig``, the run's id and start time, and
the sha256 of the MANIFEST of the previous sealed run in the same parent directory (by start
time): a hash chain, so a run deleted or resealed later in the history shows up as a broken link.
With a PEM Ed25519 private key, ``MANIFEST.sig`` holds the base64 signature of the MANIFEST's
exact bytes, and the MANIFEST names the public key's fingerprint.

``verify`` recomputes every hash and reports each changed, added or removed file by name, a bad
or missing signature, and a chain link whose predecessor's MANIFEST no longer matches, is missing
or unreadable (``--allow-chain-start`` accepts a missing or unreadable one, knowingly).
Only run directories (run.json present) are sealed. Entries that are not regular files (symlinks,
FIFOs, sockets, devices) are never opened or followed: the MANIFEST lists them as ``skipped`` and
``verify`` reports one added after sealing. Rebuilding a report after sealing changes report.html:
seal again afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drillbit.core import safeio
from drillbit.core.errors import ConfigError, DrillError, validation_problems
from drillbit.core.results import RUN
from drillbit.core.rundir import ANALYSIS_DIR
from drillbit.core.yamlio import parse_json
from drillbit.reports.rundata import file_sha256

__all__ = ["MANIFEST", "SIGNATURE", "Manifest", "generate_key", "read_manifest", "seal", "verify"]

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST"
SIGNATURE = "MANIFEST.sig"
SCHEMA = "drillbit.manifest/1"
CHAIN_START_HINT = "pass --allow-chain-start to begin a new chain knowingly"


class _FileHash(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    size: int = Field(ge=0)


class _Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    dir: str = Field(pattern=r"^(\.\.?[^/\x00]+|[^./\x00][^/\x00]*)$")  # a sibling's name, never a path
    manifest_sha256: str


class _ManifestDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(alias="schema", pattern=f"^{SCHEMA}$")
    run_id: str
    started_at: float | None = Field(default=None, allow_inf_nan=False)
    sealed_at: float | None = Field(default=None, allow_inf_nan=False)
    algorithm: str = "sha256"
    files: dict[str, _FileHash]
    skipped: dict[str, str] = Field(default_factory=dict)  # entries that are not regular files: what they are
    previous: _Link | None = None
    chain_start: bool = False  # sealed with --allow-chain-start: no link, knowingly
    signed_by: str | None = None


@dataclass(frozen=True)
class Manifest:
    run_id: str
    started_at: float | None
    files: dict[str, dict[str, Any]]  # path -> {"sha256", "size"}
    previous: dict[str, Any] | None  # {"run_id", "dir", "manifest_sha256"}
    signed_by: str | None  # sha256 of the raw Ed25519 public key
    sha256: str  # of the MANIFEST file's bytes
    skipped: dict[str, str] = field(default_factory=dict)
    chain_start: bool = False


def _canonical(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n").encode()


def read_manifest(run_dir: Path) -> Manifest:
    """The run's MANIFEST, validated; ConfigError naming it (and each bad field) otherwise."""
    path = Path(run_dir) / MANIFEST
    try:
        raw = safeio.read_bytes(path)
    except FileNotFoundError:
        raise ConfigError(str(path), "no MANIFEST: the run was never sealed (drill seal RUN_DIR)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "unreadable MANIFEST (not UTF-8): seal the run again") from None
    doc = parse_json(text, str(path))
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "unreadable MANIFEST (not a JSON object): seal the run again")
    try:
        m = _ManifestDoc.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(str(path), [f"unreadable MANIFEST: {p}" for p in validation_problems(err)]) from None
    return Manifest(run_id=m.run_id, started_at=m.started_at, files={k: v.model_dump() for k, v in m.files.items()},
                    previous=m.previous.model_dump() if m.previous else None, signed_by=m.signed_by,
                    sha256=hashlib.sha256(raw).hexdigest(), skipped=dict(m.skipped),
                    chain_start=m.chain_start)  # fmt: skip


def _run_json(run_dir: Path) -> dict[str, Any]:
    try:
        doc = parse_json(safeio.read_text(run_dir / RUN, root=run_dir), str(run_dir / RUN))
    except (OSError, DrillError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _started_at(run_dir: Path) -> float | None:
    value = _run_json(run_dir).get("started_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _run_id(run_dir: Path) -> str:
    value = _run_json(run_dir).get("id")
    return str(value) if value else run_dir.name


def _is_run_dir(path: Path) -> bool:
    """A directory holding run.json as a regular file (what drill run and drill observe write)."""
    try:
        with safeio.open_regular(path / RUN, root=path):
            return True
    except (OSError, DrillError):
        return False


def _sibling_dirs(run_dir: Path) -> list[Path]:
    """Real directories beside ``run_dir`` (a symlink is never followed)."""
    out = []
    with os.scandir(run_dir.parent) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and Path(entry.path) != run_dir:
                out.append(Path(entry.path))
    return out


def _previous(run_dir: Path, started_at: float | None) -> tuple[Path, Manifest] | None:
    """The sealed sibling run that started last before this one (by run.json ``started_at``, else by name).

    A sibling whose MANIFEST cannot be read and that may have come before is a ConfigError: the
    chain would silently skip it (``--allow-chain-start`` seals without a link instead)."""
    run_dir = run_dir.resolve()
    me = (started_at if started_at is not None else math.inf, run_dir.name)
    candidates: list[tuple[tuple[float, str], Path, Manifest]] = []
    for sibling in _sibling_dirs(run_dir):
        try:
            os.lstat(sibling / MANIFEST)
        except FileNotFoundError:
            continue
        try:
            m = read_manifest(sibling)
        except DrillError as err:
            at_ = _started_at(sibling)
            if (at_ if at_ is not None else -math.inf, sibling.name) < me:
                raise ConfigError(str(sibling / MANIFEST), f"the previous run's MANIFEST is unreadable ({err}): "
                                                           f"restore it, or {CHAIN_START_HINT}") from None  # fmt: skip
            continue
        at = m.started_at if m.started_at is not None else _started_at(sibling)
        candidates.append(((at if at is not None else -math.inf, sibling.name), sibling, m))
    before = [c for c in candidates if c[0] < me]
    if not before:
        return None
    _, path, manifest = max(before, key=lambda c: c[0])
    return path, manifest


def _key_bytes(key: Path) -> bytes:
    try:
        return safeio.read_bytes(Path(key), limit=1 << 20)
    except FileNotFoundError:
        raise ConfigError(str(key), "no such key file: pass a PEM Ed25519 key") from None


def _load_private_key(key: Path) -> Ed25519PrivateKey:
    data = _key_bytes(key)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(key), f"not a readable, unencrypted PEM private key ({err})") from err
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(str(key), f"an Ed25519 key is needed, got {type(loaded).__name__}")
    return loaded


def _load_public_key(key: Path) -> Ed25519PublicKey:
    """A PEM public key (or, for convenience, the private key it belongs to)."""
    data = _key_bytes(key)
    try:
        loaded: Any = serialization.load_pem_public_key(data)
    except ValueError:
        loaded = _load_private_key(key).public_key()
    if not isinstance(loaded, Ed25519PublicKey):
        raise ConfigError(str(key), f"an Ed25519 key is needed, got {type(loaded).__name__}")
    return loaded


def _fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_key(private: Path, public: Path) -> str:
    """Write a new Ed25519 key pair (PEM; the private key unencrypted, mode 0600); returns its fingerprint."""
    key = Ed25519PrivateKey.generate()
    safeio.write_bytes(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), mode=0o600)  # fmt: skip
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    safeio.write_bytes(public, pem)
    return _fingerprint(key.public_key())


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "not a run directory (no such directory): give runs/<id>")
    if not _is_run_dir(run_dir):
        raise ConfigError(str(run_dir), f"not a run directory (no {RUN}): only what drill run or drill observe "
                                        "wrote can be sealed")  # fmt: skip


#: what a MANIFEST never covers: itself, its signature, and re-analyses (``drill analyze`` writes
#: them under analysis/ after sealing, each sealed on its own)
_NOT_SEALED = (MANIFEST, SIGNATURE, ANALYSIS_DIR)


def seal(run_dir: Path, *, key: Path | None = None, allow_chain_start: bool = False) -> Path:
    """Write ``run_dir/MANIFEST`` (and ``MANIFEST.sig`` with ``key``, a PEM Ed25519 private key); returns MANIFEST.

    Sealing again replaces both (a stale signature is removed when sealing without a key). Entries
    that are not regular files (symlinks, FIFOs, sockets, devices) are never opened: the MANIFEST
    lists them under ``skipped``. ``allow_chain_start``: no link to a previous run, knowingly.
    """
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    private = _load_private_key(key) if key is not None else None
    started_at = _started_at(run_dir)
    prev = None if allow_chain_start else _previous(run_dir, started_at)
    link = {"run_id": prev[1].run_id, "dir": prev[0].name, "manifest_sha256": prev[1].sha256} if prev else None
    tree = safeio.walk(run_dir, exclude=_NOT_SEALED)
    for rel, kind in tree.skipped.items():
        log.warning("%s: %s is %s, not a regular file: not sealed (listed as skipped)", run_dir, rel, kind)
    doc: dict[str, Any] = {
        "schema": SCHEMA, "run_id": _run_id(run_dir), "started_at": started_at, "sealed_at": time.time(),
        "algorithm": "sha256",
        "files": {rel: {"sha256": file_sha256(p, run_dir), "size": p.stat().st_size} for rel, p in tree.files.items()},
        "skipped": tree.skipped, "previous": link, "chain_start": allow_chain_start,
        "signed_by": _fingerprint(private.public_key()) if private is not None else None,
    }  # fmt: skip
    data = _canonical(doc)
    path = safeio.write_bytes(run_dir / MANIFEST, data)
    sig = run_dir / SIGNATURE
    if private is not None:
        safeio.write_text(sig, base64.b64encode(private.sign(data)).decode() + "\n")
    else:
        safeio.remove(sig)
    log.info("sealed %s: %d files, previous %s", run_dir, len(doc["files"]), doc["previous"])
    return path


def _chain_problems(run_dir: Path, manifest: Manifest, allow_chain_start: bool) -> list[str]:
    prev = manifest.previous
    if not prev:
        return []
    prev_dir = run_dir.parent / str(prev["dir"])
    try:
        now = read_manifest(prev_dir).sha256
    except DrillError as err:
        gone = not (prev_dir / MANIFEST).exists() and not (prev_dir / MANIFEST).is_symlink()
        what = f"is missing ({prev_dir} has no MANIFEST)" if gone else f"is unreadable ({err})"
        if allow_chain_start:
            log.warning("chain: previous run %s %s: accepted (--allow-chain-start)", prev["run_id"], what)
            return []
        return [f"{MANIFEST}: chain broken: previous run {prev['run_id']} {what}: restore it, or {CHAIN_START_HINT}"]
    if now != prev["manifest_sha256"]:
        return [f"{MANIFEST}: chain broken: previous run {prev['run_id']}'s MANIFEST changed since this run was sealed"]
    return []


def verify(run_dir: Path, *, public_key: Path | None = None, allow_chain_start: bool = False) -> list[str]:
    """Problems with the sealed run directory, one line each naming the file; empty when intact.

    A missing or unreadable previous link is a problem unless ``allow_chain_start``. Raises
    ConfigError when there is nothing to verify (no directory, no MANIFEST) or the key is unusable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "not a run directory (no such directory)")
    manifest = read_manifest(run_dir)
    problems = []
    tree = safeio.walk(run_dir, exclude=_NOT_SEALED)
    for name, entry in sorted(manifest.files.items()):
        path = tree.files.get(name)
        if path is None:
            what = f"now {tree.skipped[name]}" if name in tree.skipped else "not in the run directory"
            problems.append(f"{name}: removed (listed in the MANIFEST, {what})")
            continue
        digest = file_sha256(path, run_dir)
        if digest != entry.get("sha256"):
            problems.append(f"{name}: changed (sha256 {digest[:16]}…, sealed as {str(entry.get('sha256'))[:16]}…)")
    for name in sorted(set(tree.files) - set(manifest.files)):
        problems.append(f"{name}: added after sealing (not in the MANIFEST)")
    for name, kind in tree.skipped.items():
        if name in manifest.files:
            continue
        if manifest.skipped.get(name) != kind:
            problems.append(f"{name}: {kind} added after sealing (not a regular file; not in the MANIFEST)")
    for name in sorted(set(manifest.skipped) - set(tree.skipped) - set(tree.files)):
        problems.append(f"{name}: removed (listed in the MANIFEST as {manifest.skipped[name]})")
    sig_path = run_dir / SIGNATURE
    if public_key is not None:
        public = _load_public_key(public_key)
        try:
            signature = base64.b64decode(safeio.read_bytes(sig_path, root=run_dir, limit=1 << 16).strip(),
                                         validate=True)  # fmt: skip
            public.verify(signature, safeio.read_bytes(run_dir / MANIFEST))
        except FileNotFoundError:
            problems.append(f"{SIGNATURE}: missing: the run was sealed without a signature")
        except (InvalidSignature, ValueError, ConfigError):
            problems.append(f"{SIGNATURE}: bad signature: MANIFEST was changed or signed by another key "
                            f"(expected key {_fingerprint(public)[:16]}…)")  # fmt: skip
    elif manifest.signed_by is not None and SIGNATURE not in tree.files:
        problems.append(f"{SIGNATURE}: missing (the MANIFEST says it was signed)")
    return problems + _chain_problems(run_dir, manifest, allow_chain_start)
