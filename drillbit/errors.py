"""drillbit's error types, each tied to the exit code the CLI returns (see ARCHITECTURE.md)."""

from __future__ import annotations

__all__ = [
    "EXIT_CONFIG",
    "EXIT_ENVIRONMENT",
    "EXIT_FAILED",
    "EXIT_INCONCLUSIVE",
    "EXIT_OK",
    "ConfigError",
    "DrillError",
    "EnvironmentFailure",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INCONCLUSIVE = 3
EXIT_ENVIRONMENT = 4


class DrillError(Exception):
    """Base class: an error the CLI reports as one line and maps to an exit code."""

    exit_code = EXIT_ENVIRONMENT


class ConfigError(DrillError):
    """Bad input (a file, a field, an option). The message names the file, the field and the fix."""

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, problems: list[str] | str) -> None:
        self.source = source
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


class EnvironmentFailure(DrillError):
    """The environment or the harness itself failed (a process did not start, a port is gone)."""

    exit_code = EXIT_ENVIRONMENT
