"""The fake API's objects: one resourceVersion counter for everything (as etcd's revision), a bounded
history of changes, and watch subscriptions. Thread-safe: the HTTP server's worker threads, a backend's
timers and a test's own thread may all change objects at once.

Stored objects are never changed in place (every write stores a new dict), so a watch event can carry
the object exactly as it was stored by that write; callers get deep copies.
"""

from __future__ import annotations

import builtins
import copy
import logging
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drillbit.testing.kubeapi.resources import ResourceType
from drillbit.testing.kubeapi.selectors import Query

__all__ = ["ApiError", "Listener", "Store", "WatchEvent", "now_rfc3339", "status_object"]

logger = logging.getLogger(__name__)

_Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes draws generateName suffixes from


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``meta/v1 Status``, as the API server answers errors (and a few successes)."""
    status: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" if code < 400 else "Failure",
        "message": message, "reason": reason, "code": code,
    }  # fmt: skip
    if details:
        status["details"] = dict(details)
    return status


class ApiError(Exception):
    """An API failure with its HTTP code and ``Status`` reason; a backend hook may raise one too."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details)


def _not_found(rt: ResourceType, name: str) -> ApiError:
    details = {"name": name, "group": rt.group, "kind": rt.plural}
    return ApiError(404, "NotFound", f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found', details)


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: ResourceType
    object: dict[str, Any]  # as stored by this change: never mutate
    old: dict[str, Any] | None = None  # the previous state, for MODIFIED


Listener = Callable[[WatchEvent], None]


class Store:
    def __init__(self, *, history: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._rv = 0
        self._compacted = 0  # the newest resourceVersion dropped from the history
        self._history: deque[WatchEvent] = deque()
        self._history_max = history
        self._objects: dict[_Key, dict[str, Any]] = {}
        self._listeners: dict[int, tuple[ResourceType, Listener]] = {}
        self._next_listener = 0

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # -- reads -------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._objects.get(self._key(rt, namespace, name))
            if obj is None:
                raise _not_found(rt, name)
            return copy.deepcopy(obj)

    def list(self, rt: ResourceType, query: Query | None = None) -> tuple[list[dict[str, Any]], int]:
        """The matching objects (by namespace, then name) and the resourceVersion they were read at."""
        query = query or Query()
        with self._lock:
            found = [
                obj for (group, plural, _, _), obj in self._objects.items()
                if (group, plural) == (rt.group, rt.plural) and query.matches(obj)
            ]  # fmt: skip
            found.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return copy.deepcopy(found), self._rv

    # -- writes ------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        new = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the request's")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        with self._lock:
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, "Invalid", f"{rt.kind}: metadata.name: Required value")
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
            key = self._key(rt, namespace, meta["name"])
            if key in self._objects:
                details = {"name": meta["name"], "group": rt.group, "kind": rt.plural}
                raise ApiError(409, "AlreadyExists", f'{rt.plural} "{meta["name"]}" already exists', details)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
            meta.pop("deletionTimestamp", None)
            self._write(key, rt, "ADDED", new, None)
            return copy.deepcopy(new)

    def update(
        self, rt: ResourceType, namespace: str | None, name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]], *, check_version: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
        """Apply ``change`` (given a copy, returns the new object) atomically: (old, new). Identity
        (name, namespace, uid, creation time) stays; an unchanged object is not written (no new
        resourceVersion, no event); a changed ``spec`` bumps ``metadata.generation``. With
        ``check_version``, a ``metadata.resourceVersion`` in the new object must be the current one."""
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise _not_found(rt, name)
            new = copy.deepcopy(dict(change(copy.deepcopy(old))))
            meta = new.setdefault("metadata", {})
            wanted = meta.get("resourceVersion")
            if check_version and wanted not in (None, "", old["metadata"]["resourceVersion"]):
                message = f'Operation cannot be fulfilled on {rt.plural} "{name}": the object has been modified'
                raise ApiError(409, "Conflict", message, {"name": name, "group": rt.group, "kind": rt.plural})
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            for field in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            if new == old:
                return copy.deepcopy(old), copy.deepcopy(old)
            if new.get("spec") != old.get("spec"):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            self._write(key, rt, "MODIFIED", new, old)
            return copy.deepcopy(old), copy.deepcopy(new)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: the whole object, optimistic concurrency on ``metadata.resourceVersion`` when given."""
        return self.update(rt, namespace, name, lambda _: copy.deepcopy(dict(obj)), check_version=True)[1]

    def delete(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """Remove the object now; the DELETED event (and the answer) carry it at a new resourceVersion."""
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise _not_found(rt, name)
            gone = copy.deepcopy(old)
            self._write(key, rt, "DELETED", gone, old)
            return copy.deepcopy(gone)

    # -- watch -------------------------------------------------------------------------------------

    def watch(
        self, rt: ResourceType, since: int | None, listener: Listener
    ) -> tuple[builtins.list[WatchEvent], Callable[[], None]]:
        """Subscribe ``listener`` to every later change of ``rt`` (called in the writer's thread, under
        the store's lock: it must not block). Returns the events the watch starts with: with ``since``
        None or 0, an ADDED per existing object; else every change after ``since`` (410 Expired when the
        history no longer reaches back that far); and the function that unsubscribes."""
        with self._lock:
            if not since:
                initial = [
                    WatchEvent(int(obj["metadata"]["resourceVersion"]), "ADDED", rt, obj)
                    for (group, plural, _, _), obj in self._objects.items() if (group, plural) == (rt.group, rt.plural)
                ]  # fmt: skip
            elif since < self._compacted:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({self._compacted})")
            else:
                initial = [ev for ev in self._history if ev.rv > since and ev.resource == rt]
            token = self._next_listener
            self._next_listener += 1
            self._listeners[token] = (rt, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(token, None)

        return initial, unsubscribe

    # -- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> _Key:
        if rt.namespaced and not namespace:
            raise ApiError(400, "BadRequest", f"{rt.plural} are namespaced: a namespace is required")
        return (rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    def _write(self, key: _Key, rt: ResourceType, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        if kind == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = new
        event = WatchEvent(self._rv, kind, rt, new, old if kind == "MODIFIED" else None)
        self._history.append(event)
        while len(self._history) > self._history_max:
            self._compacted = self._history.popleft().rv
        for listened, listener in list(self._listeners.values()):
            if listened == rt:
                try:
                    listener(event)
                except Exception:
                    logger.exception("a watch listener failed on %s %s", kind, key)
