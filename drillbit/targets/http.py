"""Any HTTP service as an observation target: a URL to probe (and, optionally, a DSN to write to).

It cannot inject faults, report replicas or heal: ``drill observe`` only needs to measure it.
The URL is probed as given, but recorded and printed only with its query values and fragment
masked (``drillbit.core.redact.redact_url``): a token in ``?token=`` never reaches a run directory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from drillbit.core.errors import ConfigError
from drillbit.core.redact import redact_url, remember_secrets, url_secrets
from drillbit.targets.base import Endpoints

__all__ = ["HttpTarget", "check_url", "readyz"]


def readyz(api_url: str, *, timeout: float = 2.0) -> bool:
    """The service's readiness through its public URL: ``GET <api_url>/readyz`` answers 200."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            return client.get(f"{api_url.rstrip('/')}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def check_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError("--url", f"{redact_url(url)!r} is not an http(s) URL: pass e.g. "
                                   "http://127.0.0.1:8080/healthz")  # fmt: skip
    if parts.username or parts.password:
        raise ConfigError("--url", "credentials in the URL would be recorded in the run directory: "
                                   "give the service a probe path that needs none")  # fmt: skip
    return url


class HttpTarget:
    kind = "http"

    def __init__(self, url: str, dsn: str | None = None) -> None:
        self.url, self.dsn = check_url(url), dsn
        remember_secrets(url_secrets(url) | (url_secrets(dsn) if dsn else set()))
        self.name = urlsplit(url).netloc
        self.shown_url = redact_url(url)  # what is recorded and printed

    def endpoints(self) -> Endpoints:
        return Endpoints(api_url=self.url, dsn=self.dsn, heartbeat_via="database")

    def fingerprint(self) -> dict[str, Any]:
        return {"url": self.shown_url, "heartbeat": "database" if self.dsn else None}

    def ready(self) -> bool:
        try:
            return 200 <= httpx.get(self.url, timeout=2.0).status_code < 300
        except httpx.HTTPError:
            return False

    def reachable(self) -> bool:
        """Anything answers at all (a 503 during an outage still means the host is there)."""
        try:
            httpx.get(self.url, timeout=3.0)
        except httpx.TransportError:
            return False
        return True
