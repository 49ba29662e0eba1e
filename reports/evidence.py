"""Audit evidence: a MANIFEST of every file in a run directory, chained to the previous sealed run, optionally signed.

``MANIFEST`` (JSON, canonical: sorted keys, one file a line) holds the sha256 and size of every
file under the run directory except itself and ``MANIFEST.sig``, the run's id and start time, and
the sha256 of the MANIFEST of the previous sealed run in the same parent directory (by start
time): a hash chain, so a run deleted or resealed later in the history shows up as a broken link.
With a PEM Ed25519 private key, ``MANIFEST.sig`` holds the base64 signature of the MANIFEST's
exact bytes, and the MANIFEST names the public key's fingerprint.

``verify`` recomputes every hash and reports each changed, added or removed file by name, a bad
or missing signature, and a chain link whose predecessor's MANIFEST no longer matches.
Rebuilding a report after sealing changes report.html: seal again afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drillbit.errors import ConfigError
from drillbit.results import RUN
from drillbit.rundir import ANALYSIS_DIR
from reports.rundata import file_sha256, list_files

__all__ = ["MANIFEST", "SIGNATURE", "Manifest", "generate_key", "read_manifest", "seal", "verify"]

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST"
SIGNATURE = "MANIFEST.sig"
SCHEMA = "drillbit.manifest/1"


@dataclass(frozen=True)
class Manifest:
    run_id: str
    started_at: float | None
    files: dict[str, dict[str, Any]]  # path -> {"sha256", "size"}
    previous: dict[str, Any] | None  # {"run_id", "manifest_sha256"}
    signed_by: str | None  # sha256 of the raw Ed25519 public key
    sha256: str  # of the MANIFEST file's bytes


def _canonical(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        return Manifest(run_id=str(doc["run_id"]), started_at=doc.get("started_at"), files=dict(doc["files"]),
                        previous=doc.get("previous"), signed_by=doc.get("signed_by"),
                        sha256=hashlib.sha256(raw).hexdigest())  # fmt: skip
    except FileNotFoundError as err:
        raise ConfigError(str(path), "no MANIFEST: the run was never sealed (drill seal RUN_DIR)") from err
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(str(path), f"unreadable MANIFEST ({err})") from err


def _started_at(run_dir: Path) -> float | None:
    try:
        value = json.loads((run_dir / RUN).read_text(encoding="utf-8")).get("started_at")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _run_id(run_dir: Path) -> str:
    try:
        value = json.loads((run_dir / RUN).read_text(encoding="utf-8")).get("id")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return run_dir.name
    return str(value) if value else run_dir.name


def _previous(run_dir: Path, started_at: float | None) -> tuple[Path, Manifest] | None:
    """The sealed sibling run that started last before this one (by run.json ``started_at``, else by name)."""
    run_dir = run_dir.resolve()
    candidates: list[tuple[tuple[float, str], Path, Manifest]] = []
    for sibling in run_dir.parent.iterdir():
        if sibling == run_dir or not (sibling / MANIFEST).is_file():
            continue
        try:
            m = read_manifest(sibling)
        except ConfigError as err:
            log.warning("chain: skipping %s (%s)", sibling, err)
            continue
        at = m.started_at if m.started_at is not None else _started_at(sibling)
        candidates.append(((at if at is not None else -math.inf, sibling.name), sibling, m))
    me = (started_at if started_at is not None else math.inf, run_dir.name)
    before = [c for c in candidates if c[0] < me]
    if not before:
        return None
    _, path, manifest = max(before, key=lambda c: c[0])
    return path, manifest


def _load_private_key(key: Path) -> Ed25519PrivateKey:
    try:
        loaded = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(str(key), f"not a readable, unencrypted PEM private key ({err})") from err
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(str(key), f"an Ed25519 key is needed, got {type(loaded).__name__}")
    return loaded


def _load_public_key(key: Path) -> Ed25519PublicKey:
    """A PEM public key (or, for convenience, the private key it belongs to)."""
    data = Path(key).read_bytes() if Path(key).is_file() else None
    if data is None:
        raise ConfigError(str(key), "no such key file")
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
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return _fingerprint(key.public_key())


def _sealed_files(run_dir: Path) -> list[Path]:
    """The files a MANIFEST covers: all but itself, its signature and re-analyses (``drill analyze``
    writes them under analysis/ after sealing, each sealed on its own)."""
    return [p for p in list_files(run_dir, exclude=(MANIFEST, SIGNATURE))
            if p.relative_to(run_dir).parts[0] != ANALYSIS_DIR]  # fmt: skip


def _hash_files(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(run_dir).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size}
            for p in _sealed_files(run_dir)}  # fmt: skip


def seal(run_dir: Path, *, key: Path | None = None) -> Path:
    """Write ``run_dir/MANIFEST`` (and ``MANIFEST.sig`` with ``key``, a PEM Ed25519 private key); returns MANIFEST.

    Sealing again replaces both (a stale signature is removed when sealing without a key).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "not a run directory (no such directory)")
    private = _load_private_key(key) if key is not None else None
    started_at = _started_at(run_dir)
    prev = _previous(run_dir, started_at)
    link = {"run_id": prev[1].run_id, "dir": prev[0].name, "manifest_sha256": prev[1].sha256} if prev else None
    doc: dict[str, Any] = {
        "schema": SCHEMA, "run_id": _run_id(run_dir), "started_at": started_at, "sealed_at": time.time(),
        "algorithm": "sha256", "files": _hash_files(run_dir),
        "previous": link,
        "signed_by": _fingerprint(private.public_key()) if private is not None else None,
    }  # fmt: skip
    data = _canonical(doc)
    path = run_dir / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    sig = run_dir / SIGNATURE
    if private is not None:
        sig.write_text(base64.b64encode(private.sign(data)).decode() + "\n")
    else:
        sig.unlink(missing_ok=True)
    log.info("sealed %s: %d files, previous %s", run_dir, len(doc["files"]), doc["previous"])
    return path


def verify(run_dir: Path, *, public_key: Path | None = None) -> list[str]:
    """Problems with the sealed run directory, one line each naming the file; empty when intact.

    Raises ConfigError when there is nothing to verify (no directory, no MANIFEST) or the key is unusable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "not a run directory (no such directory)")
    manifest = read_manifest(run_dir)
    problems = []
    actual = {p.relative_to(run_dir).as_posix(): p for p in _sealed_files(run_dir)}
    for name, entry in sorted(manifest.files.items()):
        path = actual.get(name)
        if path is None:
            problems.append(f"{name}: removed (listed in the MANIFEST, not in the run directory)")
            continue
        digest = file_sha256(path)
        if digest != entry.get("sha256"):
            problems.append(f"{name}: changed (sha256 {digest[:16]}…, sealed as {str(entry.get('sha256'))[:16]}…)")
    for name in sorted(set(actual) - set(manifest.files)):
        problems.append(f"{name}: added after sealing (not in the MANIFEST)")
    sig_path = run_dir / SIGNATURE
    if public_key is not None:
        public = _load_public_key(public_key)
        if not sig_path.is_file():
            problems.append(f"{SIGNATURE}: missing: the run was sealed without a signature")
        else:
            try:
                signature = base64.b64decode(sig_path.read_text().strip(), validate=True)
                public.verify(signature, (run_dir / MANIFEST).read_bytes())
            except (InvalidSignature, ValueError):
                problems.append(f"{SIGNATURE}: bad signature: MANIFEST was changed or signed by another key "
                                f"(expected key {_fingerprint(public)[:16]}…)")  # fmt: skip
    elif manifest.signed_by is not None and not sig_path.is_file():
        problems.append(f"{SIGNATURE}: missing (the MANIFEST says it was signed)")
    prev = manifest.previous
    if prev:
        prev_dir = run_dir.parent / str(prev.get("dir", ""))
        if (prev_dir / MANIFEST).is_file():
            try:
                now = read_manifest(prev_dir).sha256
            except ConfigError as err:
                problems.append(f"{MANIFEST}: chain: previous run {prev.get('run_id')}: {err}")
            else:
                if now != prev.get("manifest_sha256"):
                    problems.append(f"{MANIFEST}: chain broken: previous run {prev.get('run_id')}'s MANIFEST changed "
                                    "since this run was sealed")  # fmt: skip
        else:
            log.warning("chain: previous run %s (%s) is not here: link not checked", prev.get("run_id"), prev_dir)
    return problems
