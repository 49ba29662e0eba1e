"""Render the manifests under test: a kustomize tree (``kubectl kustomize``) or plain YAML files.

What was rendered is recorded exactly: every source file read (the kustomization files and the
resources they pull in, found through kustomize's own origin annotations) with its sha256, and
the sha256 of the rendered output, so a verdict is tied to what was deployed. Bad input (YAML
that does not parse, kustomize failing, a path that is not there) is a ``ConfigError`` naming the
file (and line when known).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drillbit.core.errors import ConfigError, EnvironmentFailure

__all__ = ["KUSTOMIZATION_FILES", "ORIGIN", "Rendered", "SourceFile", "object_key", "render"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
ORIGIN = "config.kubernetes.io/origin"
KUSTOMIZE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SourceFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class Rendered:
    """The rendered objects, where each came from, and the hashes that identify them."""

    path: str  # as given: the overlay, a directory of YAML files or one file
    kustomize: bool
    objects: list[dict[str, Any]]
    origins: dict[str, str]  # object_key -> the source file it came from
    sources: list[SourceFile]
    rendered_sha256: str
    text: str = field(repr=False)

    def origin(self, obj: dict[str, Any]) -> str:
        return self.origins.get(object_key(obj), self.path)


def object_key(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (namespace empty for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace') or ''}/{meta.get('name')}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _kustomization(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise EnvironmentFailure("kubectl is not on PATH: it renders kustomize trees (install kubectl >= 1.27)")
    return found


def _kustomize(kubectl: str, directory: Path, source: str) -> str:
    try:
        # rendering needs no cluster: kubectl is given none (it would otherwise ask the one in
        # $KUBECONFIG for its /version, and a drill sets that to the cluster it drills)
        env = {**os.environ, "KUBECONFIG": os.devnull}
        done = subprocess.run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
                              capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT_S, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EnvironmentFailure(f"kubectl kustomize {source} took over {KUSTOMIZE_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        err = done.stderr.strip().splitlines()
        message = re.sub(r'^E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "command failed" err=', "", err[-1] if err else "")
        raise ConfigError(source, f"kustomize cannot render it: {message.strip(chr(34))} (fix the file it names)")
    return done.stdout


def _render_kustomize(directory: Path, source: str, origins_too: bool) -> tuple[str, dict[str, str]]:
    """The plain rendering, and each object's origin file (from a second rendering through a
    wrapper kustomization that turns on kustomize's origin annotations) when ``origins_too``."""
    kubectl = _kubectl()
    text = _kustomize(kubectl, directory, source)
    if not origins_too:
        return text, {}
    with tempfile.TemporaryDirectory(prefix="drill-kustomize-") as tmp:
        rel = os.path.relpath(directory.resolve(), tmp)
        (Path(tmp) / "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": [rel], "buildMetadata": ["originAnnotations"]})
        )
        annotated = _kustomize(kubectl, Path(tmp), source)
        origins: dict[str, str] = {}
        for obj in yaml.safe_load_all(annotated):
            if not isinstance(obj, dict):
                continue
            origin = yaml.safe_load(((obj.get("metadata") or {}).get("annotations") or {}).get(ORIGIN) or "{}")
            if isinstance(origin, dict) and isinstance(origin.get("path"), str):
                where = (Path(tmp) / origin["path"]).resolve()
                origins[object_key(obj)] = _display(where)
    return text, origins


def _display(path: Path) -> str:
    """Relative to the working directory when below it (as a user would type it), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _kustomization_files(directory: Path, seen: set[Path]) -> list[Path]:
    """The kustomization files of ``directory`` and of every directory it pulls in (resources,
    components, bases), depth first."""
    directory = directory.resolve()
    if directory in seen:
        return []
    seen.add(directory)
    k = _kustomization(directory)
    if k is None:
        return []
    found = [k]
    try:
        spec = yaml.safe_load(k.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return found  # kustomize has already said what is wrong with it
    for key in ("resources", "components", "bases"):
        for entry in spec.get(key) or []:
            if isinstance(entry, str) and (directory / entry).is_dir():
                found += _kustomization_files(directory / entry, seen)
    return found


def _load_yaml_files(files: list[Path]) -> tuple[str, dict[str, str]]:
    parts, origins = [], {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except UnicodeDecodeError:
            raise ConfigError(str(f), "not UTF-8 text: give a Kubernetes YAML manifest") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{f}{where}", f"not valid YAML ({getattr(err, 'problem', None) or err})") from None
        for d in docs:
            if not isinstance(d, dict):
                raise ConfigError(str(f), "a document is not a mapping: each must be one Kubernetes object")
            origins[object_key(d)] = _display(f)
        parts.append(text if text.endswith("\n") else text + "\n")
    return "---\n".join(parts), origins


def render(path: Path | str, *, origins: bool = True) -> Rendered:
    """Render ``path``: a kustomization directory, a directory of YAML files, or one YAML file.
    ``origins=False`` skips finding each object's source file (one kustomize run instead of two)."""
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise ConfigError(source, "no such file or directory: give a kustomize overlay or a manifest file")
    if not (p.is_dir() or p.is_file()):
        raise ConfigError(source, "not a regular file or a directory (a FIFO or a device?): give a manifest file")
    kustomize = p.is_dir() and _kustomization(p) is not None
    if kustomize:
        text, where = _render_kustomize(p, source, origins)
        read = [*_kustomization_files(p, set()), *(Path(o) for o in sorted(set(where.values())))]
    else:
        files = sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()) if p.is_dir() else [p]
        if not files:
            raise ConfigError(source, "no .yaml/.yml files in it and no kustomization.yaml: nothing to check")
        text, where = _load_yaml_files(files)
        read = files
    objects = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    if not objects:
        raise ConfigError(source, "renders to no Kubernetes object")
    sources, seen = [], set()
    for f in read:
        key = f.resolve()
        if key not in seen and f.is_file():
            seen.add(key)
            sources.append(SourceFile(path=_display(f), sha256=_sha256(f.read_bytes())))
    return Rendered(path=source, kustomize=kustomize, objects=objects, origins=where, sources=sources,
                    rendered_sha256=_sha256(text.encode()), text=text)  # fmt: skip
