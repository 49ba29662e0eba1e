"""Suites: named lists of experiments run on one environment with one exit code."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.errors import (
    EXIT_CONFIG,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    ConfigError,
)
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_model_file

__all__ = ["Suite", "combined_exit_code", "default_suites", "load_suite"]

def default_suites() -> Path:
    """The project's suites file (experiments/suites.yaml)."""
    return current_project().find("experiments", "suites.yaml")
#: worst first: an environment error, a usage error, a failure, an inconclusive drill, a pass
_SEVERITY = [EXIT_ENVIRONMENT, EXIT_CONFIG, EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK]


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    experiments: list[str] = Field(min_length=1)


class SuitesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    suites: dict[str, Suite]


def load_suite(name: str, path: Path | None = None) -> tuple[Suite, list[Path]]:
    """The suite and its experiment files (relative to the suites file), every missing file reported."""
    source = path or default_suites()
    data = load_model_file(source, SuitesFile, missing="no such suites file: create it (suites: NAME: experiments: "
                                                        "[FILE, ...]) or run one experiment file instead",
                           shape="suites:")  # fmt: skip
    if name not in data.suites:
        raise ConfigError("--suite", f"unknown suite {name!r}: use one of {', '.join(sorted(data.suites))}")
    suite = data.suites[name]
    files = [source.parent / e for e in suite.experiments]
    missing = [f"suites.{name}.experiments: {f} does not exist: fix the name" for f in files if not f.exists()]
    if missing:
        raise ConfigError(str(source), missing)
    return suite, files


def combined_exit_code(codes: list[int]) -> int:
    """One code for several drills: the most severe."""
    for code in _SEVERITY:
        if code in codes:
            return code
    return max(codes, default=EXIT_OK)
