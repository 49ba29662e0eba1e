"""Watch-based samplers for a Kubernetes target: the cluster tells drillbit what changed, when it changed.

``ClusterWatch`` lists, then watches (``kubernetes.watch.Watch``, one thread per resource):

- the API workload's pods (``api_selector``), the nodes (their ``zone_label``) and the API Deployment
  (its ``spec.replicas``): desired and ready replicas per zone, counted exactly as
  ``KubernetesTarget.replicas()`` counts them (``replica_counts``: ready = the Ready condition and no
  ``deletionTimestamp``; a terminating pod is not desired either; pods the Deployment wants and does
  not have count as desired under ``unscheduled``), one row per zone in the replicas samples
  (``REPLICAS_SCHEMA``) whenever the counts or the ready pods change;
- the HorizontalPodAutoscalers scaling that Deployment (autoscaling/v2): ``k8s.hpa`` in events.jsonl
  at start and whenever current or desired replicas change;
- the pods' container restarts (a ``restartCount`` that rose): ``k8s.restart``; and the namespace's
  core/v1 Events with a reason in ``EVENT_REASONS``: ``k8s.event``, once per occurrence (an Event's
  ``count`` that rises is a new occurrence; the same Event listed again is not).

Times: a record's ``t`` is when drillbit received the change (the drill's clock: the same one the
faults are timed on, so "ready by then" is conservative by the watch latency only); ``cluster_t`` (and
``cluster_at``, as the cluster wrote it) is the cluster's own timestamp where the object has one (an
Event's last occurrence, a container's termination, an HPA's last scale): the cluster's clock, whole
seconds for most fields.

Each watch resumes from the last resourceVersion it saw when it times out (``watch_timeout_s``) or
drops, and relists when the server answers 410 Gone (its history no longer reaches back). While a
watch is down the state cannot be vouched for: ``k8s.watch.lost`` and ``k8s.watch.resumed`` go into
events.jsonl, the gap into ``stats()``, no replica row is written, and ``sample()`` raises ``WatchGap``
(a replicas sampler records that as a probe error: a gap, never a stale count).

Writing goes through two small interfaces (``RowSink``: ``drillbit.probes.samplers.ParquetSink``;
``EventSink``: ``drillbit.core.events.EventLog``) so this module needs nothing above the targets layer;
``drillbit.session`` wires them. ``for_target`` builds one from a target whose ``kind`` is
``"kubernetes"`` (else None) using only its public ``spec`` and ``namespace``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from drillbit.core.clock import Clock
from drillbit.core.errors import EnvironmentFailure

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "EVENT_REASONS",
    "ClientFactory",
    "ClusterWatch",
    "EventSink",
    "RowSink",
    "WatchGap",
    "cluster_time",
    "for_target",
    "is_ready",
    "replica_counts",
]

log = logging.getLogger(__name__)

#: the core/v1 Event reasons recorded into events.jsonl
EVENT_REASONS = frozenset({"OOMKilled", "FailedScheduling", "Unhealthy", "BackOff", "Killing", "Evicted"})
#: a watch request lasts this long (the server ends it), then resumes from its last resourceVersion
WATCH_TIMEOUT_S = 240
#: beyond the watch's own timeout, a silent connection is given this long before it counts as dropped
READ_SLACK_S = 30
CONNECT_TIMEOUT_S = 5.0
LIST_TIMEOUT_S = 30.0
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
#: ``start`` waits this long for the API server to answer every watch request
OPEN_TIMEOUT_S = 30.0
#: answers that retrying will not change (the Role does not grant the watch): the watch ends, recorded
REFUSED = frozenset({401, 403})
STOP_TIMEOUT_S = 5.0
#: an Event's message is cut to this many characters (one events.jsonl line stays one small write)
MESSAGE_MAX = 1000
#: the watches the replica counts depend on: while one is down there is no replica row
REPLICA_RESOURCES = ("nodes", "deployments", "pods")

ClientFactory = Callable[[], "ApiClient"]
Method = Callable[["ApiClient"], Callable[..., Any]]


class RowSink(Protocol):
    def add(self, row: dict[str, Any]) -> None: ...


class EventSink(Protocol):
    def emit(self, kind: str, t: float | None = None, **fields: Any) -> dict[str, Any]: ...


class WatchGap(RuntimeError):
    """A watch the replica counts depend on is down (or died): its state cannot be vouched for now."""


# -- reading objects (raw JSON dicts, as the API sends them) ---------------------------------------


def cluster_time(value: object) -> float | None:
    """An RFC 3339 timestamp from the cluster as epoch seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Its Ready condition is True and it is not terminating."""
    if _terminating(pod):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def replica_counts(
    pods: Iterable[Mapping[str, Any]], node_zones: Mapping[str, str], desired: int | None
) -> dict[str, dict[str, Any]]:
    """Per zone: ``desired`` (pods scheduled there, not terminating), ``ready`` and ``ready_ids`` (the
    ready pods' names, sorted); every zone a node carries appears; pods the Deployment wants
    (``desired``, None: unknown) and does not have count as desired under ``unscheduled``."""
    out: dict[str, dict[str, Any]] = {z: {"desired": 0, "ready": 0, "ready_ids": []} for z in set(node_zones.values())}
    live = [p for p in pods if not _terminating(p)]
    for pod in live:
        node = (pod.get("spec") or {}).get("nodeName")
        zone = node_zones.get(node, "unscheduled") if node else "unscheduled"
        row = out.setdefault(zone, {"desired": 0, "ready": 0, "ready_ids": []})
        row["desired"] += 1
        if is_ready(pod):
            row["ready"] += 1
            row["ready_ids"].append(_meta(pod)["name"])
    missing = (desired or 0) - len(live)
    if missing > 0:
        out.setdefault("unscheduled", {"desired": 0, "ready": 0, "ready_ids": []})["desired"] += missing
    for row in out.values():
        row["ready_ids"].sort()
    return out


def _event_count(event: Mapping[str, Any]) -> int:
    series = event.get("series") or {}
    return int(event.get("count") or series.get("count") or 1)


def _event_time(event: Mapping[str, Any]) -> str | None:
    """When the Event last occurred, as the cluster wrote it."""
    series = event.get("series") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"),
                  event.get("firstTimestamp"), _meta(event).get("creationTimestamp")):  # fmt: skip
        if value:
            return str(value)
    return None


def _container_restarts(pod: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    status = pod.get("status") or {}
    return {c["name"]: c for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            if c.get("name")}  # fmt: skip


# -- one watched resource --------------------------------------------------------------------------


class _Watcher:
    """List, then watch from the list's resourceVersion; resume from the last one seen when a watch
    ends or drops; relist on 410 Gone. ``on_list(items, t)`` and ``on_event(type, object, t)`` get raw
    objects and the time they were received; ``on_down(name, why)`` and ``on_up(name)`` bracket a gap."""

    def __init__(
        self, name: str, clients: ClientFactory, method: Method, kwargs: dict[str, Any], *, clock: Clock,
        timeout_s: int, on_list: Callable[[list[dict[str, Any]], float], None],
        on_event: Callable[[str, dict[str, Any], float], None], on_down: Callable[[str, str], None],
        on_up: Callable[[str], None],
    ) -> None:  # fmt: skip
        from kubernetes import watch

        self.name, self.clients, self.method, self.kwargs = name, clients, method, kwargs
        self.clock, self.timeout_s = clock, timeout_s
        self.on_list, self.on_event, self.on_down, self.on_up = on_list, on_event, on_down, on_up
        self.rv: str | None = None
        self.counts = {"lists": 0, "streams": 0, "events": 0, "drops": 0, "gone": 0}
        self.last_error: str | None = None
        self.died: str | None = None
        self.died_at: float | None = None
        self.opened = threading.Event()  # the API server answered a watch request (it holds the watch)
        self._client: ApiClient | None = None
        self._watch = watch.Watch()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubewatch-{name}", daemon=True)

    def _api(self) -> Callable[..., Any]:
        if self._client is None:
            self._client = self.clients()
        return self.method(self._client)

    def list(self) -> None:
        """Read the whole state (raw JSON) and the resourceVersion to watch from."""
        resp = self._api()(**self.kwargs, _preload_content=False, _request_timeout=LIST_TIMEOUT_S)
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        t = self.clock.now()
        self.counts["lists"] += 1
        self.rv = str(_meta(body)["resourceVersion"])
        self.on_list(list(body.get("items") or []), t)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        self._watch.stop()

    def wait_open(self, deadline: float) -> bool:
        """Until the first watch request is answered (True), the watch died, or ``deadline`` (monotonic)."""
        while not self.opened.wait(0.02):
            if self.died is not None or time.monotonic() >= deadline:
                return False
        return True

    def join(self, deadline: float) -> bool:
        """Wait for the thread until ``deadline`` (monotonic), unblocking its stream meanwhile."""
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._watch.stop()  # again: a stream opened after the first stop() resets the flag
            self._thread.join(0.05)
        return not self._thread.is_alive()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "resource_version": self.rv, "last_error": self.last_error, "died": self.died,
                "died_at": self.died_at}  # fmt: skip

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as err:  # a bug: recorded as this watch's death (a gap to the end), never silent
            log.exception("the %s watch died", self.name)
            self._die(f"{type(err).__name__}: {err}")

    def _die(self, why: str) -> None:
        self.died, self.died_at = why, self.clock.now()
        self.on_down(self.name, f"died: {why}")

    def _loop(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        backoff = RETRY_MIN_S
        while not self._stopping.is_set():
            try:
                if self.rv is None:
                    self.list()
                    self.on_up(self.name)
                self._stream()
                backoff = RETRY_MIN_S
                continue  # the watch ended (its timeout, or the server closed it): resume from self.rv
            except ApiException as err:
                if self._stopping.is_set():
                    break
                if err.status in REFUSED:
                    log.error("the %s watch is refused (%s %s): it ends here", self.name, err.status, err.reason)
                    self._die(f"refused: {err.status} {err.reason}")
                    return
                if err.status == 410:  # the history no longer reaches back to self.rv: relist now
                    self.counts["gone"] += 1
                    self.rv = None
                    self.on_down(self.name, "410 Gone: relisting")
                    continue
                self._dropped(f"{err.status} {err.reason}")
            except (HTTPError, OSError, ValueError) as err:  # connection lost or refused, torn or unreadable body
                if self._stopping.is_set():
                    break
                self._dropped(f"{type(err).__name__}: {err}")
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)

    def _dropped(self, why: str) -> None:
        self.counts["drops"] += 1
        self.last_error = why
        log.warning("the %s watch dropped (%s): resuming from resourceVersion %s", self.name, why, self.rv)
        self.on_down(self.name, why)

    def _open(self, **kwargs: Any) -> Any:
        """One watch request. Once the server has answered it, every change after self.rv reaches this
        watch (those since, replayed first): the gap, if there was one, ends here."""
        resp = self._api()(**kwargs)
        if 200 <= int(getattr(resp, "status", 0)) < 300:
            self.opened.set()
            self.on_up(self.name)
        return resp

    def _stream(self) -> None:
        self.counts["streams"] += 1
        kwargs = {
            **self.kwargs,
            "resource_version": self.rv,
            "timeout_seconds": self.timeout_s,
            "allow_watch_bookmarks": True,
            "_request_timeout": (CONNECT_TIMEOUT_S, self.timeout_s + READ_SLACK_S),
        }
        # _open has no return type the client can read: events come raw (dicts), as the lists do
        for event in self._watch.stream(self._open, **kwargs):
            if self._stopping.is_set():
                break
            if not isinstance(event, dict):  # a line the client could not parse
                continue
            t = self.clock.now()
            obj = event.get("raw_object") or {}
            rv = _meta(obj).get("resourceVersion")
            if rv:
                self.rv = str(rv)
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                self.counts["events"] += 1
                self.on_event(str(event["type"]), obj, t)


# -- the cluster's state, and the records ----------------------------------------------------------


class ClusterWatch:
    """Replicas per zone, the API Deployment's HPA, restarts and Events of one namespace, by watching."""

    def __init__(
        self, clients: ClientFactory, *, namespace: str, api_selector: str, api_deployment: str, zone_label: str,
        clock: Clock, reasons: Iterable[str] = EVENT_REASONS, watch_timeout_s: int = WATCH_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self.namespace, self.api_selector, self.api_deployment = namespace, api_selector, api_deployment
        self.zone_label, self.clock, self.reasons = zone_label, clock, frozenset(reasons)
        self.watch_timeout_s = watch_timeout_s
        self._lock = threading.RLock()
        self._pods: dict[str, dict[str, Any]] = {}
        self._zones: dict[str, str] = {}
        self._desired: int | None = None
        self._deployment_seen = False
        self._restarts: dict[str, dict[str, int]] = {}  # pod uid -> container -> restartCount
        self._hpas: dict[str, tuple[Any, Any]] = {}  # name -> (currentReplicas, desiredReplicas)
        self._events_seen: dict[str, int] = {}  # Event uid -> count
        self._down: dict[str, tuple[float, str]] = {}  # resource -> (since, why)
        self._gaps: list[dict[str, Any]] = []
        self._last: dict[str, dict[str, Any]] | None = None
        self._last_t = float("-inf")
        self._records: dict[str, int] = {}
        self._sink: RowSink | None = None
        self._events: EventSink | None = None
        self._initial = True  # listing at start: a baseline, not changes
        self._started = self._stopped = False
        self._watchers = self._make_watchers(clients)

    def _make_watchers(self, clients: ClientFactory) -> list[_Watcher]:
        from kubernetes import client

        ns = {"namespace": self.namespace}
        specs: list[tuple[str, Method, dict[str, Any], Any, Any]] = [
            ("nodes", lambda c: client.CoreV1Api(c).list_node, {}, self._nodes_listed, self._node_event),
            ("deployments", lambda c: client.AppsV1Api(c).list_namespaced_deployment,
             {**ns, "field_selector": f"metadata.name={self.api_deployment}"}, self._deployments_listed,
             self._deployment_event),
            ("pods", lambda c: client.CoreV1Api(c).list_namespaced_pod, {**ns, "label_selector": self.api_selector},
             self._pods_listed, self._pod_event),
            ("hpa", lambda c: client.AutoscalingV2Api(c).list_namespaced_horizontal_pod_autoscaler, ns,
             self._hpas_listed, self._hpa_event),
            ("events", lambda c: client.CoreV1Api(c).list_namespaced_event, ns, self._events_listed,
             self._event_event),
        ]  # fmt: skip
        return [_Watcher(name, clients, method, kwargs, clock=self.clock, timeout_s=self.watch_timeout_s,
                         on_list=on_list, on_event=on_event, on_down=self._lost, on_up=self._resumed)
                for name, method, kwargs, on_list, on_event in specs]  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, sink: RowSink, events: EventSink) -> ClusterWatch:
        """List every resource (the baseline, and the first replica rows), then watch each on its own
        thread; returns once the API server has answered every watch request (each from its list's
        resourceVersion: no change after the listed state is missed). Raises EnvironmentFailure when
        the cluster cannot be read or a watch is refused (nothing is left running then)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self._lock:
            if self._started:
                raise RuntimeError("a ClusterWatch starts once")
            self._started, self._sink, self._events = True, sink, events
        try:
            for w in self._watchers:
                w.list()
        except (ApiException, HTTPError, OSError, ValueError) as err:
            self._close_clients()
            raise EnvironmentFailure(f"kubernetes {self.namespace}: cannot list {w.name} to watch them: {err}") \
                from None  # fmt: skip
        if not self._deployment_seen:
            self._close_clients()
            raise EnvironmentFailure(f"kubernetes {self.namespace}: no Deployment {self.api_deployment}: desired "
                                     "replicas cannot be read")  # fmt: skip
        with self._lock:
            self._initial = False
            self._record_replicas(self.clock.now())
        for w in self._watchers:
            w.start()
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        for w in self._watchers:
            if not w.wait_open(deadline):
                self.stop()
                raise EnvironmentFailure(f"kubernetes {self.namespace}: cannot watch {w.name}: "
                                         f"{w.died or f'no answer in {OPEN_TIMEOUT_S:.0f} s'}")  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop every watch (each unblocked at once) and close the clients; idempotent."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        for w in self._watchers:
            w.request_stop()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        stuck = [w.name for w in self._watchers if not w.join(deadline)]
        if stuck:
            log.warning("kubernetes watches still running %.0f s after stop: %s", STOP_TIMEOUT_S, ", ".join(stuck))
        self._close_clients()

    def _close_clients(self) -> None:
        for w in self._watchers:
            w.close()

    @property
    def died(self) -> str | None:
        """Why a watch died (its thread raised), or None."""
        return next((f"the {w.name} watch died at {w.died_at}: {w.died}" for w in self._watchers if w.died), None)

    def stats(self) -> dict[str, Any]:
        """How it watched, for a sampler's sidecar: per resource, the gaps, the records written."""
        with self._lock:
            down = {name: {"since": since, "why": why} for name, (since, why) in self._down.items()}
            return {"namespace": self.namespace, "deployment": self.api_deployment, "selector": self.api_selector,
                    "zone_label": self.zone_label, "watch_timeout_s": self.watch_timeout_s,
                    "resources": {w.name: w.stats() for w in self._watchers}, "gaps": list(self._gaps),
                    "down": down, "records": dict(self._records), "died": self.died}  # fmt: skip

    # -- replica rows --------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, Any]]:
        """The replica counts as the watches last told them (``replica_counts``)."""
        with self._lock:
            return replica_counts(self._pods.values(), self._zones, self._desired)

    def sample(self) -> float:
        """Write the current replica rows (a sampler's tick); their time. Raises WatchGap while a
        watch they depend on is down or dead."""
        with self._lock:
            why = self._gap_reason()
            if why is not None:
                raise WatchGap(why)
            return self._write_rows(self.clock.now(), self.counts())

    def _gap_reason(self) -> str | None:
        if not self._started or self._initial:
            return "the watches have not started"
        down = [f"{name} since {since:.3f} ({why})" for name, (since, why) in self._down.items()
                if name in REPLICA_RESOURCES]  # fmt: skip
        dead = [w for w in self._watchers if w.died and w.name in REPLICA_RESOURCES]
        if dead:
            return f"the {dead[0].name} watch died: {dead[0].died}"
        return f"watch down: {'; '.join(down)}" if down else None

    def _record_replicas(self, t: float) -> None:
        """A row per zone when the counts or the ready pods changed (under the lock)."""
        if self._initial or self._gap_reason() is not None:
            return
        counts = self.counts()
        if counts != self._last:
            self._write_rows(t, counts)

    def _write_rows(self, t: float, counts: dict[str, dict[str, Any]]) -> float:
        """One row per zone, all at one time: never before the previous rows' (a change another watch
        received later may already be in these counts: they are known by the later time)."""
        assert self._sink is not None
        t = max(t, self._last_t)
        self._last, self._last_t = counts, t
        for zone in sorted(counts):
            c = counts[zone]
            self._sink.add({"t": t, "region": zone, "desired": int(c["desired"]), "ready": int(c["ready"]),
                            "ready_ids": list(c["ready_ids"])})  # fmt: skip
        return t

    def _emit(self, kind: str, t: float, **fields: Any) -> None:
        assert self._events is not None
        self._records[kind] = self._records.get(kind, 0) + 1
        self._events.emit(kind, t=t, **fields)

    # -- gaps ----------------------------------------------------------------------------------
    def _lost(self, name: str, why: str) -> None:
        with self._lock:
            if name in self._down:
                return
            t = self.clock.now()
            self._down[name] = (t, why)
            self._emit("k8s.watch.lost", t, resource=name, reason=why)

    def _resumed(self, name: str) -> None:
        with self._lock:
            if name not in self._down:
                return
            since, why = self._down.pop(name)
            t = self.clock.now()
            self._gaps.append({"resource": name, "from": since, "to": t, "reason": why})
            self._emit("k8s.watch.resumed", t, resource=name, gap_s=round(t - since, 6), reason=why)
            self._record_replicas(t)

    # -- nodes, the Deployment, pods -----------------------------------------------------------
    def _zone(self, node: Mapping[str, Any]) -> str:
        return str((_meta(node).get("labels") or {}).get(self.zone_label, "unknown"))

    def _nodes_listed(self, items: list[dict[str, Any]], t: float) -> None:
        with self._lock:
            self._zones = {_meta(n)["name"]: self._zone(n) for n in items}
            self._record_replicas(t)

    def _node_event(self, kind: str, node: dict[str, Any], t: float) -> None:
        with self._lock:
            if kind == "DELETED":
                self._zones.pop(_meta(node)["name"], None)
            else:
                self._zones[_meta(node)["name"]] = self._zone(node)
            self._record_replicas(t)

    def _deployments_listed(self, items: list[dict[str, Any]], t: float) -> None:
        mine = [d for d in items if _meta(d).get("name") == self.api_deployment]
        with self._lock:
            self._deployment_seen = self._deployment_seen or bool(mine)
            self._desired = int((mine[0].get("spec") or {}).get("replicas") or 0) if mine else None
            self._record_replicas(t)

    def _deployment_event(self, kind: str, deployment: dict[str, Any], t: float) -> None:
        if _meta(deployment).get("name") != self.api_deployment:
            return
        with self._lock:
            self._desired = None if kind == "DELETED" else int((deployment.get("spec") or {}).get("replicas") or 0)
            self._record_replicas(t)

    def _pods_listed(self, items: list[dict[str, Any]], t: float) -> None:
        with self._lock:
            self._pods = {_meta(p)["name"]: p for p in items}
            for pod in items:
                self._check_restarts(pod, t)
            live = {_meta(p).get("uid") for p in items}
            self._restarts = {uid: c for uid, c in self._restarts.items() if uid in live}
            self._record_replicas(t)

    def _pod_event(self, kind: str, pod: dict[str, Any], t: float) -> None:
        with self._lock:
            name = _meta(pod)["name"]
            if kind == "DELETED":
                self._pods.pop(name, None)
                self._restarts.pop(_meta(pod).get("uid", ""), None)
            else:
                self._pods[name] = pod
                self._check_restarts(pod, t)
            self._record_replicas(t)

    def _check_restarts(self, pod: dict[str, Any], t: float) -> None:
        """A ``k8s.restart`` for every container whose restartCount rose since drillbit last saw it (a
        pod first seen after the start counts from 0); at start, only the baseline."""
        meta = _meta(pod)
        known = self._restarts.setdefault(str(meta.get("uid", "")), {})
        for container, status in _container_restarts(pod).items():
            count = int(status.get("restartCount") or 0)
            before = known.get(container, 0)
            known[container] = max(count, before)
            if self._initial or count <= before:
                continue
            terminated = (status.get("lastState") or {}).get("terminated") or {}
            at = terminated.get("finishedAt")
            node = (pod.get("spec") or {}).get("nodeName")
            self._emit("k8s.restart", t, pod=meta.get("name"), uid=meta.get("uid"), container=container,
                       restarts=count, previous=before, reason=terminated.get("reason"),
                       exit_code=terminated.get("exitCode"), zone=self._zones.get(node) if node else None,
                       cluster_t=cluster_time(at), cluster_at=at)  # fmt: skip

    # -- the HPA ---------------------------------------------------------------------------------
    def _scales_api(self, hpa: Mapping[str, Any]) -> bool:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        return ref.get("kind", "Deployment") == "Deployment" and ref.get("name") == self.api_deployment

    def _hpas_listed(self, items: list[dict[str, Any]], t: float) -> None:
        with self._lock:
            mine = {_meta(h)["name"]: h for h in items if self._scales_api(h)}
            for name in [n for n in self._hpas if n not in mine]:
                self._hpa_gone(name, t)
            for hpa in mine.values():
                self._hpa_changed(hpa, t)

    def _hpa_event(self, kind: str, hpa: dict[str, Any], t: float) -> None:
        with self._lock:
            name = _meta(hpa)["name"]
            if kind == "DELETED" or not self._scales_api(hpa):
                if name in self._hpas:
                    self._hpa_gone(name, t)
                return
            self._hpa_changed(hpa, t)

    def _hpa_changed(self, hpa: dict[str, Any], t: float) -> None:
        name, spec, status = _meta(hpa)["name"], hpa.get("spec") or {}, hpa.get("status") or {}
        now = (status.get("currentReplicas"), status.get("desiredReplicas"))
        if self._hpas.get(name) == now:
            return
        first = name not in self._hpas
        self._hpas[name] = now
        at = status.get("lastScaleTime")
        self._emit("k8s.hpa", t, hpa=name, deployment=self.api_deployment, current=now[0], desired=now[1],
                   min_replicas=spec.get("minReplicas"), max_replicas=spec.get("maxReplicas"),
                   initial=self._initial, new=first and not self._initial, cluster_t=cluster_time(at),
                   cluster_at=at)  # fmt: skip

    def _hpa_gone(self, name: str, t: float) -> None:
        self._hpas.pop(name, None)
        self._emit("k8s.hpa", t, hpa=name, deployment=self.api_deployment, current=None, desired=None,
                   deleted=True)  # fmt: skip

    # -- Events ----------------------------------------------------------------------------------
    def _events_listed(self, items: list[dict[str, Any]], t: float) -> None:
        with self._lock:
            for event in items:
                self._check_event(event, t)

    def _event_event(self, kind: str, event: dict[str, Any], t: float) -> None:
        with self._lock:
            if kind == "DELETED":  # expired (the API server keeps Events for an hour)
                self._events_seen.pop(str(_meta(event).get("uid", "")), None)
                return
            self._check_event(event, t)

    def _check_event(self, event: dict[str, Any], t: float) -> None:
        """A ``k8s.event`` for an Event with a recorded reason, once per occurrence (its count);
        at start, only the baseline."""
        if event.get("reason") not in self.reasons:
            return
        meta, count = _meta(event), _event_count(event)
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        before = self._events_seen.get(uid)
        if before is not None and count <= before:
            return
        self._events_seen[uid] = count
        if self._initial:
            return
        involved = event.get("involvedObject") or event.get("regarding") or {}
        source = event.get("source") or {}
        at = _event_time(event)
        self._emit("k8s.event", t, reason=event.get("reason"), type=event.get("type"),
                   object={"kind": involved.get("kind"), "name": involved.get("name")},
                   message=str(event.get("message") or event.get("note") or "")[:MESSAGE_MAX], count=count,
                   previous_count=before or 0, event=meta.get("name"), uid=meta.get("uid"),
                   source=source.get("component") or event.get("reportingComponent")
                   or event.get("reportingController"), cluster_t=cluster_time(at), cluster_at=at)  # fmt: skip


# -- from a target ---------------------------------------------------------------------------------


class _KubeTarget(Protocol):
    """What ``for_target`` reads of a kubernetes target (``drillbit.targets.kubernetes.KubernetesTarget``)."""

    kind: str
    namespace: str
    spec: Any  # KubernetesSpec: kubeconfig, context, api_selector, api_deployment, zone_label


def for_target(target: object, *, clock: Clock, watch_timeout_s: int = WATCH_TIMEOUT_S) -> ClusterWatch | None:
    """The watches for a ``kind == "kubernetes"`` target (its public ``spec`` and ``namespace``, a client
    of exactly its kubeconfig and context); None for any other target. Contacts nothing until started."""
    if getattr(target, "kind", None) != "kubernetes":
        return None
    kube = cast(_KubeTarget, target)
    spec, namespace = kube.spec, kube.namespace

    def clients() -> ApiClient:
        from kubernetes import config

        return config.new_client_from_config(config_file=spec.kubeconfig, context=spec.context)

    return ClusterWatch(clients, namespace=str(namespace), api_selector=spec.api_selector,
                        api_deployment=spec.api_deployment, zone_label=spec.zone_label, clock=clock,
                        watch_timeout_s=watch_timeout_s)  # fmt: skip
