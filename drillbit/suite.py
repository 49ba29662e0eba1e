"""Suites: named lists of experiments run on one environment with one exit code."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drillbit.errors import (
    EXIT_CONFIG,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    ConfigError,
    validation_problems,
)

__all__ = ["DEFAULT_SUITES", "Suite", "combined_exit_code", "load_suite"]

DEFAULT_SUITES = Path(__file__).resolve().parents[1] / "experiments" / "suites.yaml"
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
    source = path or DEFAULT_SUITES
    try:
        data = SuitesFile.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(str(source), "no such suites file: pass an existing file to --suites") from None
    except yaml.YAMLError:
        raise ConfigError(str(source), "not valid YAML: fix the syntax") from None
    except ValidationError as err:
        raise ConfigError(str(source), validation_problems(err)) from None
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
