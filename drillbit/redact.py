"""Keep secrets out of every file a drill writes (journal, events, logs, reports).

A secret is any value resolved from the experiment's Chaos Toolkit ``secrets`` block, and any
environment variable whose name says it is one (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``,
``*_KEY``, ...) or is listed in ``$DRILL_SECRET_ENV`` (comma-separated names). Redaction replaces
each occurrence of a secret value, also inside longer strings (a DSN carrying a password), with
``***``, and masks the password of any URL/DSN it finds (``postgresql://user:pw@host``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor", "secret_env_names", "secret_values"]

MASK = "***"
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$|API_?KEY|ACCESS_KEY", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s\"']+:)(?P<pw>[^@\s\"'/]+)(?=@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s'\"]+)", re.I)
#: a URL query parameter whose name says it is a secret (?token=..., &api_key=...)
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:[a-z_]*(?:token|secret|password|passwd|key|signature|sig))=)(?P<v>[^&#\s\"']+)", re.I
)
#: shorter values would mask ordinary words; they are still never logged by drillbit itself
MIN_SECRET_LEN = 4


def secret_env_names(env: Mapping[str, str] | None = None) -> list[str]:
    """Environment variable names whose values are secrets."""
    env = os.environ if env is None else env
    listed = {n.strip() for n in env.get("DRILL_SECRET_ENV", "").split(",") if n.strip()}
    return sorted(n for n in env if n in listed or _SECRET_NAME.search(n))


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_values(secrets: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret value: resolved Chaos Toolkit secrets (scope -> key -> value) and secret env vars."""
    env = os.environ if env is None else env
    values = set(_leaves(secrets or {}))
    values.update(env[n] for n in secret_env_names(env))
    return {v for v in values if len(v) >= MIN_SECRET_LEN}


class Redactor:
    """``redact(obj)`` returns a copy of a JSON-like object (or a string) with every secret masked."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is masked whole
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in self.values)) if self.values else None

    def text(self, s: str) -> str:
        if self._pattern is not None:
            s = self._pattern.sub(MASK, s)
        s = _URL_PASSWORD.sub(lambda m: m.group("scheme") + MASK, s)
        s = _QUERY_SECRET.sub(lambda m: m.group("key") + MASK, s)
        return _KV_PASSWORD.sub(lambda m: m.group("key") + MASK, s)

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.text(str(k)) if isinstance(k, str) else k: self(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj
