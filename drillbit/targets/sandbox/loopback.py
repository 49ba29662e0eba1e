"""Plain-HTTP clients for the sandbox's own loopback endpoints (replica sockets, Patroni, the front door).

``httpx.Client()`` with its defaults builds TLS contexts and loads the CA bundle: about 35 ms of CPU
per client, for every call that makes one (``httpx.get`` included). The sandbox's control plane
polled replicas with a new client per request several times a second, and spent about a third of
one core of a 2-core machine on it, at the expense of the service it measures. Everything the
sandbox talks to is plain HTTP on loopback, so these clients skip TLS set-up (0.3 ms) and ignore
proxy variables from the environment (a loopback request never goes through a proxy).
"""

from __future__ import annotations

from pathlib import Path

import httpx

__all__ = ["client"]


def client(*, timeout: float, uds: Path | None = None) -> httpx.Client:
    """A client for plain HTTP on loopback, or on the unix socket ``uds``."""
    transport = httpx.HTTPTransport(uds=str(uds) if uds is not None else None, verify=False)
    return httpx.Client(transport=transport, timeout=timeout, verify=False, trust_env=False)
