"""A fake Kubernetes API server over real HTTP on loopback, for the official client and chaosk8s.

    with FakeKubeAPI(policy=Policy.from_file("infra/k8s/base/drill-runner-rbac.yaml")) as api:
        api.write_kubeconfig(tmp / "kubeconfig", namespace="trading")
        ...  # kubernetes.config.load_kube_config(config_file=..., context="drill-fake")
        api.audit.count(verb="delete", resource="pods")

Plain HTTP on 127.0.0.1 (a free port), a bearer token checked on every request (401 without it), the
RBAC policy if one is given (403), generic get/list/watch/create/update/patch/delete on every resource
type of ``resources.RESOURCES``, the ``pods/eviction`` subresource under PodDisruptionBudgets (429),
and discovery. Watches (``?watch=true``) stream newline-delimited JSON events from
``resourceVersion`` on, until ``timeoutSeconds``. uvicorn runs in a background thread; requests that
touch the store run in worker threads, so a slow backend hook never stalls a watch.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio.to_thread
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from drillbit.testing.kubeapi import resources
from drillbit.testing.kubeapi.evictions import check_eviction
from drillbit.testing.kubeapi.hooks import Backend, NullBackend
from drillbit.testing.kubeapi.patching import PatchError, apply_patch
from drillbit.testing.kubeapi.rbac import AuditLog, Policy, RequestAttributes
from drillbit.testing.kubeapi.resources import ResourceType
from drillbit.testing.kubeapi.selectors import FieldSelector, LabelSelector, Query, SelectorError
from drillbit.testing.kubeapi.store import ApiError, Store, WatchEvent, status_object

__all__ = ["FakeKubeAPI"]

logger = logging.getLogger(__name__)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_PODS = resources.find("", "v1", "pods")
_DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class _Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


def _discovery(parts: list[str], address: str) -> dict[str, Any] | None:
    if parts == ["version"]:
        return resources.version_info()
    if parts == ["api"]:
        return resources.api_versions(address)
    if parts == ["apis"]:
        return resources.api_groups()
    if len(parts) == 2 and parts[0] == "apis":
        return resources.api_groups(parts[1]) or {}
    if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        return resources.api_resource_list(group, version) or {}
    return None  # not a discovery path


def _target(parts: list[str]) -> _Target:
    not_found = ApiError(404, "NotFound", "the server could not find the requested resource")
    if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise not_found
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    rt = resources.find(group, version, rest[0])
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        raise not_found
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else ""
    if subresource and subresource not in resources.SUBRESOURCES.get((rt.group, rt.plural), {}):
        raise not_found
    if name is not None and rt.namespaced and namespace is None:
        raise not_found
    return _Target(rt, namespace, name, subresource)


def _verb(method: str, target: _Target, params: Any) -> str:
    not_allowed = ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
    if target.subresource:
        if method != "POST":
            raise not_allowed
        return "create"
    if method == "GET":
        if target.name is not None:
            return "get"
        return "watch" if params.get("watch", "").lower() in ("true", "1") else "list"
    if method == "POST":
        if target.name is not None:
            raise not_allowed
        return "create"
    if target.name is None:
        if method == "DELETE":
            return "deletecollection"
        raise not_allowed
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as err:
        raise ApiError(400, "BadRequest", f"the request body is not JSON: {err}") from None


def _int_param(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", f"{name} must be an integer, not {raw!r}") from None


def _event_line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _view(event: WatchEvent, query: Query) -> bytes | None:
    """The event as this watch sees it: an object moving into the selection is ADDED to it, one
    moving out DELETED from it (as the API server's watch cache tells it)."""
    now = query.matches(event.object)
    before = event.old is not None and query.matches(event.old)
    if event.type != "MODIFIED":
        return _event_line(event.type, event.object) if now else None
    if now:
        return _event_line("MODIFIED" if before else "ADDED", event.object)
    return _event_line("DELETED", event.object) if before else None


class FakeKubeAPI:
    def __init__(
        self, *, store: Store | None = None, backend: Backend | None = None, policy: Policy | None = None,
        token: str | None = None,
    ) -> None:  # fmt: skip
        self.store = store or Store()
        self.backend: Backend = backend or NullBackend()
        self.policy = policy  # None: every authenticated request is allowed
        self.token = token or secrets.token_urlsafe(24)
        self.audit = AuditLog()
        self._evict_lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[WatchEvent | None]]] = set()
        self._streams_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None
        route = Route("/{path:path}", self._endpoint, methods=_METHODS)
        self.app = Starlette(routes=[route])

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake API is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> FakeKubeAPI:
        if self._thread is not None:
            raise RuntimeError("the fake API is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket, self._port = sock, sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", http="h11", ws="none", loop="asyncio",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-kubeapi", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake API did not start")
            time.sleep(0.01)
        logger.info("fake Kubernetes API on %s", self.url)
        return self

    def stop(self) -> None:
        """End every watch stream, then the server (idempotent)."""
        with self._streams_lock:
            streams = list(self._streams)
        for loop, queue in streams:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:  # that loop is already closed
                continue
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                logger.warning("the fake API's server thread did not stop in 10 s")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: Path | str, *, context: str = "drill-fake", namespace: str = "default", user: str = "drill-runner",
    ) -> Path:  # fmt: skip
        """A kubeconfig (mode 0600) whose ``context`` reaches this server with its token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": user, "namespace": namespace}}],
        }  # fmt: skip
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600, exist_ok=True)
        out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return out

    # -- requests ----------------------------------------------------------------------------------

    def _authenticated(self, request: Request) -> bool:
        expected = f"Bearer {self.token}".encode()
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), expected)

    async def _endpoint(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        if not self._authenticated(request):
            self.audit.record(method, path, None, allowed=False, code=401)
            agent = request.headers.get("user-agent")
            logger.warning("unauthenticated %s %s refused (user agent %r)", method, path, agent)
            return JSONResponse(status_object(401, "Unauthorized", "Unauthorized"), status_code=401)
        parts = [p for p in path.split("/") if p]
        doc = _discovery(parts, f"127.0.0.1:{self._port}") if method == "GET" else None
        if doc is not None:
            code = 200 if doc else 404
            self.audit.record(method, path, None, allowed=True, code=code)
            if not doc:
                doc = status_object(404, "NotFound", "the server could not find the requested resource")
            return JSONResponse(doc, status_code=code)
        attrs: RequestAttributes | None = None
        try:
            target = _target(parts)
            attrs = RequestAttributes(
                _verb(method, target, request.query_params), target.rt.group, target.rt.plural, target.subresource,
                target.namespace, target.name,
            )  # fmt: skip
            if self.policy is not None and not self.policy.allows(attrs):
                raise self._forbidden(attrs)
            query = Query(
                target.namespace, LabelSelector.parse(request.query_params.get("labelSelector")),
                FieldSelector.parse(request.query_params.get("fieldSelector")),
            )  # fmt: skip
            if attrs.verb == "watch":
                since = _int_param(request.query_params, "resourceVersion")
                timeout = _int_param(request.query_params, "timeoutSeconds")
                stream = self._stream(target.rt, query, since, float(timeout or _DEFAULT_WATCH_TIMEOUT))
                self.audit.record(method, path, attrs, allowed=True, code=200)
                return StreamingResponse(stream, media_type="application/json")
            body = await request.body()
            content_type = request.headers.get("content-type", "application/json")
            dry = request.query_params.get("dryRun") == "All"  # server-side dry run: checked, not done
            handle = functools.partial(self._dry_run if dry else self._handle, attrs, target, query, body, content_type)
            code, payload = await anyio.to_thread.run_sync(handle)
        except SelectorError as err:
            code, payload = 400, status_object(400, "BadRequest", str(err))
        except ApiError as err:
            code, payload = err.code, err.status()
        self.audit.record(method, path, attrs, allowed=code != 403, code=code)
        logger.debug("%s %s -> %d", method, path, code)
        return JSONResponse(payload, status_code=code)

    @staticmethod
    def _forbidden(attrs: RequestAttributes) -> ApiError:
        where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
        subject = f'"{attrs.name}" ' if attrs.name else ""
        message = (
            f'{attrs.full_resource} {subject}is forbidden: User "system:serviceaccount:drill-runner" cannot '
            f'{attrs.verb} resource "{attrs.full_resource}" in API group "{attrs.api_group}"{where}'
        )
        return ApiError(403, "Forbidden", message, {"name": attrs.name or "", "group": attrs.api_group,
                                                     "kind": attrs.full_resource})  # fmt: skip

    def _dry_run(
        self, attrs: RequestAttributes, target: _Target, query: Query, body: bytes, content_type: str,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        """``?dryRun=All``: authorization (already checked), existence and the patch applied to a copy,
        as the API server would; nothing is stored and no backend hook runs."""
        if attrs.verb in ("get", "list"):
            return self._handle(attrs, target, query, body, content_type)
        rt, ns, name = target.rt, target.namespace, target.name
        if attrs.verb == "create" and target.subresource != "eviction":
            obj = _json_body(body)
            if not isinstance(obj, dict):
                raise ApiError(400, "BadRequest", "the request body is not an object")
            return 201, obj
        assert name is not None
        assert _PODS is not None
        current = self.store.get(_PODS if target.subresource == "eviction" else rt, ns, name)  # 404 when absent
        if attrs.verb == "patch":
            try:
                return 200, apply_patch(current, _json_body(body), content_type)
            except PatchError as err:
                raise ApiError(err.code, "Invalid", str(err)) from None
        return (201 if target.subresource == "eviction" else 200), current

    def _handle(
        self, attrs: RequestAttributes, target: _Target, query: Query, body: bytes, content_type: str,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        rt, ns, name = target.rt, target.namespace, target.name
        if attrs.verb == "get":
            assert name is not None
            return 200, self.store.get(rt, ns, name)
        if attrs.verb == "list":
            items, rv = self.store.list(rt, query)
            return 200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": items}  # fmt: skip
        if attrs.verb == "create" and target.subresource == "eviction":
            assert ns is not None and name is not None
            return self._evict(ns, name)
        if attrs.verb == "create":
            obj = _json_body(body)
            if not isinstance(obj, dict):
                raise ApiError(400, "BadRequest", "the request body is not an object")
            return 201, self.store.create(rt, obj, namespace=ns)
        assert name is not None
        if attrs.verb == "update":
            obj = _json_body(body)
            if not isinstance(obj, dict) or (obj.get("metadata") or {}).get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name in the URL")
            return 200, self.store.replace(rt, ns, name, obj)
        if attrs.verb == "patch":
            patch = _json_body(body)
            try:
                _, new = self.store.update(rt, ns, name, lambda obj: apply_patch(obj, patch, content_type))
            except PatchError as err:
                reason = "UnsupportedMediaType" if err.code == 415 else "Invalid"
                raise ApiError(err.code, reason, str(err)) from None
            self._hook(self.backend.on_patch, rt.kind, ns, name, patch, new)
            return 200, new
        if attrs.verb == "delete":
            gone = self.store.delete(rt, ns, name)
            if rt == _PODS:
                assert ns is not None
                self._hook(self.backend.on_delete_pod, ns, name, gone)
            return 200, gone
        raise ApiError(405, "MethodNotAllowed", f"{attrs.verb} is not supported by this fake API")

    def _evict(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        assert _PODS is not None
        with self._evict_lock:  # the budget check and the deletion, as one step
            pod = self.store.get(_PODS, namespace, name)
            check_eviction(self.store, namespace, pod)
            gone = self.store.delete(_PODS, namespace, name)
        self._hook(self.backend.on_evict, namespace, name, gone)
        return 201, status_object(201, "", "")

    @staticmethod
    def _hook(hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except ApiError:
            raise
        except Exception as err:
            logger.exception("backend hook %s failed", getattr(hook, "__name__", hook))
            raise ApiError(500, "InternalError", f"the backend failed: {err}") from err

    async def _stream(self, rt: ResourceType, query: Query, since: int | None, timeout: float) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

        def push(event: WatchEvent) -> None:  # in the writer's thread
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the server's loop is closed: the stream is over anyway
                return

        try:
            initial, unsubscribe = self.store.watch(rt, since, push)
        except ApiError as err:  # a watch learns of a too old resourceVersion as an ERROR event
            yield _event_line("ERROR", err.status())
            return
        entry = (loop, queue)
        with self._streams_lock:
            self._streams.add(entry)
        try:
            for event in initial:
                if (line := _view(event, query)) is not None:
                    yield line
            deadline = loop.time() + timeout
            while (remaining := deadline - loop.time()) > 0:
                try:
                    got = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if got is None:  # the server is stopping
                    break
                if (line := _view(got, query)) is not None:
                    yield line
        finally:
            unsubscribe()
            with self._streams_lock:
                self._streams.discard(entry)
