"""What the fake API tells the world behind it: the backend (drillbit's sandbox, or a test's simulator)
decides what a deleted pod, an eviction or a patch *does*.

The server first makes the API's own change in the store (the pod is gone, the patch is applied) and
then calls the hook, in a worker thread, before it answers: when the client has its answer the backend
has acted (a replica was killed). Anything that follows later (a controller's replacement pod, a
rollout) is the backend's to put into the store, from its own threads. A hook that raises ``ApiError``
turns the answer into that error (the store change stays, as a real cluster's would); any other
exception answers 500.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Backend", "NullBackend"]


class Backend(Protocol):
    def on_delete_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        """A pod was deleted through the API (``pod``: its last state)."""

    def on_evict(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        """A pod was evicted (its disruption budget allowed it) and is gone from the store."""

    def on_patch(self, kind: str, namespace: str | None, name: str, patch: Any, obj: dict[str, Any]) -> None:
        """An object was patched (``patch``: the body as sent; ``obj``: the object as now stored)."""


class NullBackend:
    """Nothing behind the API: the store's changes are all that happens."""

    def on_delete_pod(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        return None

    def on_evict(self, namespace: str, name: str, pod: dict[str, Any]) -> None:
        return None

    def on_patch(self, kind: str, namespace: str | None, name: str, patch: Any, obj: dict[str, Any]) -> None:
        return None
