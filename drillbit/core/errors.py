"""drillbit's error types, each tied to the exit code the CLI returns (see ARCHITECTURE.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from drillbit.core.redact import Redactor, secret_values

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_ENVIRONMENT",
    "EXIT_FAILED",
    "EXIT_INCONCLUSIVE",
    "EXIT_OK",
    "ConfigError",
    "DrillError",
    "EnvironmentFailure",
    "PermissionDenied",
    "validation_problems",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INCONCLUSIVE = 3
EXIT_ENVIRONMENT = 4


class DrillError(Exception):
    """Base class: an error the CLI reports as one line and maps to an exit code."""

    exit_code = EXIT_ENVIRONMENT


def _one_line(text: str) -> str:
    return " ".join(text.split()) if any(c in text for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029") else text


class ConfigError(DrillError):
    """Bad input (a file, a field, an option). The message names the file, the field and the fix."""

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, problems: list[str] | str) -> None:
        self.source = _one_line(source)  # a file name or a key from the input may hold a newline
        self.problems = [_one_line(p) for p in ([problems] if isinstance(problems, str) else problems)]
        super().__init__(f"{source}: " + "; ".join(self.problems))


class EnvironmentFailure(DrillError):
    """The environment or the harness itself failed (a process did not start, a port is gone)."""

    exit_code = EXIT_ENVIRONMENT


class PermissionDenied(EnvironmentFailure):
    """The operating system refused access to a path (exit 4: the environment, not the input)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"permission denied: {path}")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(value: object, limit: int = 60) -> str:
    """``value`` as shown in an error: secrets masked first (a cut secret would escape the mask), then cut."""
    text = Redactor(secret_values()).text(repr(value))
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def validation_problems(err: ValidationError) -> list[str]:
    """Every problem pydantic found, each as ``field.path: what is wrong (got X): fix``."""
    problems = []
    for e in err.errors():
        msg = {"extra_forbidden": "unknown field: remove it or check its spelling",
               "missing": "required field is missing: add it",
               "model_type": "expected a mapping"}.get(e["type"], e["msg"].removeprefix("Value error, "))  # fmt: skip
        shown = e.get("input")
        if e["type"] not in ("extra_forbidden", "missing") and not isinstance(shown, dict | list) and (
                repr(shown) not in msg):  # fmt: skip
            msg = f"{msg} (got {_short(shown)})"
        problems.append(f"{_where(e['loc'])}: {msg}" if e["loc"] else msg)  # a model rule names its own fields
    return problems
