"""Keep secrets out of every file a drill writes (journal, events, logs, reports).

A secret is any value resolved from the experiment's Chaos Toolkit ``secrets`` block, and any
environment variable whose name says it is one (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``,
``*_KEY``, ...) or is listed in ``$DRILL_SECRET_ENV`` (comma-separated names). Redaction replaces
each occurrence of a secret value, also inside longer strings (a DSN carrying a password), with
``***``, and masks every URL it finds (``redact_url``): the userinfo's password (or the whole
userinfo when it is a bare token), every query value (the key names stay), and the fragment.
It applies to error messages too (``drill``'s main redacts every line it prints).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "Redactor",
    "experiment_secret_values",
    "redact_url",
    "remember_secrets",
    "secret_env_names",
    "secret_values",
    "url_secrets",
]

MASK = "***"
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$|API_?KEY|ACCESS_KEY", re.I)
#: a URL in free text (scheme://...), up to whitespace or a quote
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]+", re.I)
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s'\"]+)", re.I)
#: shorter values would mask ordinary words; they are still never logged by drillbit itself
MIN_SECRET_LEN = 4
#: secrets this process learned from its input (an experiment's secrets, a URL's query): every
#: ``secret_values()`` includes them, so every Redactor and every error line masks them
_REMEMBERED: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Treat ``values`` as secrets for the rest of this process (see ``secret_values``)."""
    _REMEMBERED.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN)


def experiment_secret_values(secrets: Any, env: Mapping[str, str] | None = None) -> set[str]:
    """The values a Chaos Toolkit ``secrets:`` block names (scope -> key -> value): inline values
    (any leaf), and environment-sourced ones (``{type: env, key: NAME}``) resolved from ``env``."""
    env = os.environ if env is None else env
    values: set[str] = set()
    if not isinstance(secrets, Mapping):
        return values
    for scope in secrets.values():
        if not isinstance(scope, Mapping):
            continue
        for value in scope.values():
            if isinstance(value, Mapping) and value.get("type") == "env":
                key = value.get("key")
                if isinstance(key, str) and env.get(key):
                    values.add(env[key])
            elif isinstance(value, str):
                values.add(value)
    return values


def _split(url: str) -> tuple[str, str, str, str, str] | None:
    """(scheme://, userinfo, host-and-path, query, fragment) of a URL, or None."""
    m = re.fullmatch(r"(?P<s>[a-z][a-z0-9+.-]*://)(?:(?P<u>[^/?#@]*)@)?(?P<h>[^?#]*)(?:\?(?P<q>[^#]*))?(?:#(?P<f>.*))?",
                     url, re.I | re.S)  # fmt: skip
    if m is None:
        return None
    return m["s"], m["u"] or "", m["h"], m["q"] or "", m["f"] or ""


def redact_url(url: str) -> str:
    """``url`` with its secrets masked: the userinfo's password (a bare userinfo, a token, whole),
    every query value (key names kept; a bare item whole) and the fragment."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, user, host, query, fragment = parts
    out = scheme
    if user:
        name, sep, _pw = user.partition(":")
        out += (f"{name}:{MASK}" if sep else MASK) + "@"
    out += host
    if query:
        items = [(k + "=" + (MASK if v else "")) if eq else (MASK if k else "")
                 for k, eq, v in (item.partition("=") for item in query.split("&"))]  # fmt: skip
        out += "?" + "&".join(items)
    if fragment:
        out += "#" + MASK
    return out


def url_secrets(url: str) -> set[str]:
    """The secret parts of ``url`` (password or bare userinfo, query values, fragment), for a Redactor."""
    parts = _split(url)
    if parts is None:
        return set()
    _, user, _, query, fragment = parts
    name, sep, pw = user.partition(":")
    found = {pw if sep else name, fragment}
    for item in query.split("&") if query else []:
        k, eq, v = item.partition("=")
        found.add(v if eq else k)
    return {v for v in found if v}


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
    values = set(_leaves(secrets or {})) | _REMEMBERED
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
        s = _URL.sub(lambda m: redact_url(m.group(0)), s)
        return _KV_PASSWORD.sub(lambda m: m.group("key") + MASK, s)

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.text(str(k)) if isinstance(k, str) else k: self(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj
