"""The drill project: the folder of files a team owns and edits, found by path.

A drill project holds ``drill.yaml`` (its targets) and the folders drillbit reads by path:
``experiments/`` (experiments, SLA files, suites, catalogue), ``loadtests/`` (locustfiles and
``profiles/``), ``probes/`` (the platform's own probe definitions), ``reports/`` (template
overrides and the report schema) and ``infra/`` (the sandbox topology, manifests).

Which project, in this order:

1. ``--project DIR`` (the CLI puts it in ``$DRILL_PROJECT``, so chaostoolkit activities and
   every subprocess see the same project);
2. the nearest folder, from the working directory upward, that holds ``drill.yaml``;
3. the defaults shipped inside drillbit (``drill init`` copies them into a new project).

A file a project lacks is taken from the shipped defaults (:meth:`Project.find`), so a project
holds only what it changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.core.safeio import write_bytes

__all__ = [
    "INIT_CONTENT", "PROJECT_ENV", "PROJECT_FILE", "Project", "current", "defaults_root", "find_project",
    "init_project",
]  # fmt: skip

PROJECT_FILE = "drill.yaml"
PROJECT_ENV = "DRILL_PROJECT"
#: where the wheel build puts the defaults (setup.py copies the repository's project folders here)
_PACKAGED = Path(__file__).resolve().parent.parent / "_project"


def defaults_root() -> Path:
    """The project drillbit ships: inside the installed package, or (an editable install of the
    repository) the repository itself, whose top-level folders are those defaults."""
    if (_PACKAGED / PROJECT_FILE).is_file():
        return _PACKAGED
    checkout = _PACKAGED.parent.parent
    if (checkout / PROJECT_FILE).is_file() and (checkout / "pyproject.toml").is_file():
        return checkout
    raise EnvironmentFailure(f"drillbit's shipped project is missing ({_PACKAGED}): reinstall drillbit")


@dataclass(frozen=True)
class Project:
    root: Path
    shipped: bool  # True: drillbit's own defaults, not a team's project

    def find(self, *parts: str) -> Path:
        """``parts`` in this project, else in the shipped defaults (the path in this project when
        neither has it, for the error message)."""
        own = self.root.joinpath(*parts)
        if own.exists() or self.shipped:
            return own
        shipped = defaults_root().joinpath(*parts)
        return shipped if shipped.exists() else own

    def names(self, folder: str, suffix: str) -> list[str]:
        """The stems of the ``suffix`` files in ``folder``, this project's and the shipped ones."""
        roots = [self.root] if self.shipped else [self.root, defaults_root()]
        return sorted({p.stem for r in roots if (r / folder).is_dir() for p in (r / folder).glob(f"*{suffix}")})

    @property
    def config_file(self) -> Path:
        return self.root / PROJECT_FILE


def find_project(explicit: Path | str | None = None, start: Path | None = None) -> Project:
    """The project ``explicit`` names, else the nearest ``drill.yaml`` upward from ``start`` (the
    working directory), else the shipped defaults."""
    if explicit is not None and str(explicit) != "":
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise ConfigError(str(explicit), "--project: no such directory: pass a drill project (drill init DIR)")
        return Project(root.resolve(), shipped=False)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            shipped = defaults_root()
            return Project(folder, shipped=folder == shipped.resolve())
    return Project(defaults_root(), shipped=True)


def current() -> Project:
    """The project of this process: ``$DRILL_PROJECT`` (set by ``--project``) or found from the cwd."""
    return find_project(os.environ.get(PROJECT_ENV) or None)


#: what ``drill init`` copies from the shipped project (reports/schemas is drillbit's, not the team's)
INIT_CONTENT = ("drill.yaml", "conftest.py", "experiments", "loadtests", "probes", "infra/sandbox", "infra/k8s",
                "infra/terraform/sandbox", "infra/monitoring", "tests/resilience")  # fmt: skip


def init_project(dest: Path, *, force: bool = False) -> list[Path]:
    """Write a starter drill project into ``dest`` (created if missing) from the shipped one: it runs
    as it is against the sandbox. Refuses to overwrite any file unless ``force``; returns the files."""
    source = defaults_root()
    files = sorted(
        p.relative_to(source)
        for rel in INIT_CONTENT
        for p in ([source / rel] if (source / rel).is_file() else (source / rel).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    )
    if dest.exists() and not dest.is_dir():
        raise ConfigError(str(dest), "not a directory: give a new or existing directory for the project")
    existing = [str(dest / f) for f in files if os.path.lexists(dest / f)]
    if existing and not force:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise ConfigError(str(dest), f"{shown} already exist: pass --force to overwrite them, or choose another "
                                     "directory")  # fmt: skip
    written = []
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_bytes(target, (source / rel).read_bytes()))
    (dest / "reports" / "templates").mkdir(parents=True, exist_ok=True)  # a report template here overrides drillbit's
    return written
