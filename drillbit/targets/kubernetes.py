"""The kubernetes kind: a team's cluster as a drill target, through the official ``kubernetes`` client.

A kubernetes target names the one kubeconfig context it may use and the one namespace it may act
in. drillbit uses exactly that context, whatever kubectl's current context is, refuses one the
kubeconfig does not have, refuses a cluster whose server is not the one recorded in drill.yaml
(``server``), and refuses the system namespaces, so a drill never lands on whatever cluster kubectl
points at. Nothing is contacted until a drill asks.

What the driver reads back from the cluster (never what it asked for):

- replicas per zone: the API workload's pods (``api_selector``), each in the zone of its node
  (``zone_label``); ready = its Ready condition, not terminating; a pod's name is its identity;
- faults: pods deleted (landed when each is gone or terminating), a zone lost by cordoning its
  nodes and evicting the API's pods through the Eviction API (which respects PodDisruptionBudgets;
  landed when no API pod is ready there), the database primary's pod deleted (landed when another
  pod leads), a rolling update by patching the image tag (landed when every pod of the Deployment
  runs it, ready);
- blue-green: the API Service's selector names the live colour (``colour_label``, e.g. ``track:
  blue``; one Deployment per colour, each selecting its own colour). A switch points it at the other
  colour, only when that colour has ready pods (otherwise it does not land and nothing changes),
  and is landed when the Service read back selects the new colour and ready pods match it. The
  previous selector is kept in an annotation on the Service, so a rollback, or a later process's
  heal after a crashed drill, restores exactly it;
- heal: uncordons the nodes drillbit cordoned and switches back a Service it switched (both marked
  with annotations), then waits for whole.

Every cluster call is counted (``api_calls``) for the record of a drill's overhead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets.base import Endpoints, Target
from drillbit.targets.http import readyz

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = ["KubeApiError", "KubernetesKind", "KubernetesSpec", "KubernetesTarget", "check_kube_context"]

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
CORDONED_BY = "drillbit.dev/cordoned-by"
SWITCHED_BY = "drillbit.dev/switched-by"  # on a Service whose selector drillbit switched
PREVIOUS_SELECTOR = "drillbit.dev/previous-selector"  # its selector before the switch (JSON)
ROLLING_FROM = "drillbit.dev/rolling-from"  # on a Deployment drillbit is rolling: its images before (JSON)
WAIT_TIMEOUT_S = 300.0
POLL_S = 0.25


class KubernetesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: str = Field(min_length=1)  # the only kubeconfig context this target may use
    kubeconfig: str | None = Field(default=None, min_length=1)
    namespace: str | None = Field(default=None, min_length=1)  # the only namespace it acts in
    server: str | None = Field(default=None, min_length=1)  # the cluster's API server as recorded: refused if not
    api_url: str | None = Field(default=None, min_length=1)  # the service's public URL (probes, load)
    # the environment variable holding the service's database DSN (e.g. through a port-forward): the RPO
    # read-back and the integrity checks; unset: neither is measured (INCONCLUSIVE), never a secret in drill.yaml
    dsn_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_deployment: str = Field(default="trading-api", min_length=1)
    api_selector: str = Field(default="app.kubernetes.io/name=trading-api", min_length=1)
    db_selector: str = Field(default="app.kubernetes.io/name=trading-db", min_length=1)
    zone_label: str = Field(default="topology.kubernetes.io/zone", min_length=1)
    # the deployment manifests under test (a kustomize overlay or YAML): recorded, hashed and checked
    # with every drill, so a verdict is tied to what was deployed
    manifests: str | None = Field(default=None, min_length=1)
    api_service: str = Field(default="trading-api", min_length=1)  # the Service a blue-green switch points
    colour_label: str = Field(default="track", min_length=1)  # the pod label its selector names the colour by
    colours: tuple[str, str] = ("blue", "green")  # a switch without ``to`` goes to the other one

    @field_validator("colours")
    @classmethod
    def _two_colours(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1] or not all(value):
            raise ValueError("two different, non-empty colours (e.g. [blue, green])")
        return value


class KubeApiError(EnvironmentFailure):
    """The API server answered a request with an error status (403 refused, 404 gone, 429 try later)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _retry_later(status: int) -> bool:
    """A refusal that time may cure: a disruption budget (429), an object already gone (404), the
    API server itself (5xx); never a 403 (RBAC) or a bad request."""
    return status in (404, 429) or status >= 500


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def image_repo(image: str) -> str:
    """The image without its tag or digest (``repo:1.4`` and ``repo@sha256:...`` are ``repo``)."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[0] if ":" in last else image


def _rolling_mark(deployment: Any) -> tuple[dict[str, str], dict[str, str]] | None:
    """(images before, images drillbit set) of a roll drillbit marked and did not see land."""
    mark = (deployment.metadata.annotations or {}).get(ROLLING_FROM)
    if not mark:
        return None
    try:
        data = json.loads(mark)
        return ({str(k): str(v) for k, v in data["from"].items()}, {str(k): str(v) for k, v in data["to"].items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EnvironmentFailure(f"deployment/{deployment.metadata.name}: unreadable {ROLLING_FROM} annotation: "
                                 "roll it back by hand (kubectl rollout undo) and remove it") from None  # fmt: skip


def _selector_of(deployment: Any) -> str:
    """A Deployment's own label selector (matchLabels and matchExpressions) as a query string."""
    sel = deployment.spec.selector
    terms = [f"{k}={v}" for k, v in sorted((sel.match_labels or {}).items())]
    for e in sel.match_expressions or []:
        values = ",".join(e.values or [])
        terms.append({"In": f"{e.key} in ({values})", "NotIn": f"{e.key} notin ({values})", "Exists": e.key,
                      "DoesNotExist": f"!{e.key}"}[e.operator])  # fmt: skip
    return ",".join(terms)


def check_kube_context(name: str, spec: KubernetesSpec, source: str) -> str:
    """The kubeconfig's context to use; refuses one that is not the target's configured context, a
    server that is not the recorded one, and a system namespace."""
    from kubernetes import config as kube_config  # the kubernetes client is imported by this kind only

    try:
        contexts, _current = kube_config.list_kube_config_contexts(config_file=spec.kubeconfig)
    except (kube_config.ConfigException, OSError) as err:
        raise ConfigError(spec.kubeconfig or "~/.kube/config", f"cannot read the kubeconfig: {err}") from None
    names = [c["name"] for c in contexts]
    if spec.context not in names:
        raise ConfigError(source, f"targets.{name}.context: {spec.context!r} is not in the kubeconfig "
                                  f"(has: {', '.join(names)})")  # fmt: skip
    if spec.namespace in SYSTEM_NAMESPACES:
        raise ConfigError(source, f"targets.{name}.namespace: {spec.namespace!r} is a system namespace: "
                                  "drill the platform's own")  # fmt: skip
    if spec.server is not None:
        server = _server_of(spec)
        if server.rstrip("/") != spec.server.rstrip("/"):
            raise ConfigError(source, f"targets.{name}.server: the context {spec.context!r} points at {server}, "
                                      f"not {spec.server}: a different cluster; fix the kubeconfig or "
                                      "drill.yaml")  # fmt: skip
    return spec.context  # used explicitly, whatever kubectl's current context is


def _server_of(spec: KubernetesSpec) -> str:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=spec.kubeconfig, context=spec.context, client_configuration=cfg)
    return str(cfg.host)


def _ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class KubernetesTarget:
    kind = "kubernetes"

    def __init__(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None = None, *,
                 dsn: str | None = None) -> None:  # fmt: skip
        if spec.namespace is None:
            raise ConfigError("drill.yaml", f"targets.{name}.namespace: required to drill a cluster (the one "
                                            "namespace drillbit may act in)")  # fmt: skip
        self.name, self.spec, self.namespace = name, spec, spec.namespace
        self._dsn = dsn  # given by a kind that knows it (sandbox-k8s); else spec.dsn_env's value
        self._state_dir = Path(state_dir) if state_dir else Path(".drill") / "kubernetes" / name
        self._client: ApiClient | None = None
        self.api_calls = 0
        self.cordon_mark = f"{name}/{self.namespace}"

    # -- the client ----------------------------------------------------------------------------
    def _api(self) -> ApiClient:
        if self._client is None:
            from kubernetes import config

            self._client = config.new_client_from_config(config_file=self.spec.kubeconfig, context=self.spec.context)
        return self._client

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        self.api_calls += 1
        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            raise KubeApiError(f"kubernetes {self.spec.context}: {fn.__name__}: {err.status} {err.reason}",
                               int(err.status or 0)) from None  # fmt: skip
        except HTTPError as err:
            raise EnvironmentFailure(f"kubernetes {self.spec.context}: cannot reach the API server: {err}") from None

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api())

    def _apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self._api())

    # -- reading -------------------------------------------------------------------------------
    def _pods(self, selector: str) -> list[Any]:
        return list(self._call(self._core().list_namespaced_pod, self.namespace, label_selector=selector).items)

    def _zones(self) -> dict[str, str]:
        nodes = self._call(self._core().list_node).items
        return {n.metadata.name: (n.metadata.labels or {}).get(self.spec.zone_label, "unknown") for n in nodes}

    def _zone_of(self, pod: Any, zones: dict[str, str]) -> str:
        return zones.get(pod.spec.node_name, "unscheduled") if pod.spec.node_name else "unscheduled"

    def _deployment(self) -> Any:
        return self._call(self._apps().read_namespaced_deployment, self.spec.api_deployment, self.namespace)

    def _service(self) -> Any:
        return self._call(self._core().read_namespaced_service, self.spec.api_service, self.namespace)

    def _find_service(self) -> Any | None:
        """The API Service, or None when the cluster has none (nothing to switch, nothing to undo)."""
        try:
            return self._service()
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    def _ready_names(self, selector: dict[str, str]) -> list[str]:
        return sorted(p.metadata.name for p in self._pods(_selector(selector)) if _ready(p))

    def state_dir(self) -> str:
        return str(self._state_dir)

    @contextlib.contextmanager
    def activity_scope(self) -> Iterator[None]:
        """chaosk8s activities (``deployment_available_and_healthy``, ``terminate_pods``) load the
        kubeconfig's current context unless told: point them at this target's context and file.
        chaosk8s reads ``KUBECONFIG`` from the environment, but the kubernetes client took its
        default file from it at import, so that default is pointed here too (and put back)."""
        from kubernetes.config import kube_config

        env = {"KUBERNETES_CONTEXT": self.spec.context}
        if self.spec.kubeconfig:
            env["KUBECONFIG"] = str(Path(self.spec.kubeconfig).resolve())
        before = {k: os.environ.get(k) for k in env}
        default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        os.environ.update(env)
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = env.get("KUBECONFIG", default)
        try:
            yield
        finally:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = default
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def endpoints(self) -> Endpoints:
        if self.spec.api_url is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}.api_url: required to probe the service (its "
                                            "public URL: ingress or load balancer)")  # fmt: skip
        dsn = self._dsn or (os.environ.get(self.spec.dsn_env) or None if self.spec.dsn_env else None)
        return Endpoints(api_url=self.spec.api_url.rstrip("/"), dsn=dsn, heartbeat_via="api")

    def fingerprint(self) -> dict[str, Any]:
        d = self._deployment()
        return {"context": self.spec.context, "server": self._api().configuration.host, "namespace": self.namespace,
                "deployment": self.spec.api_deployment, "generation": d.metadata.generation,
                "images": [c.image for c in d.spec.template.spec.containers],
                "manifests": str(Path(self.spec.manifests).resolve()) if self.spec.manifests else None}  # fmt: skip

    def ready(self) -> bool:
        return self.spec.api_url is not None and readyz(self.spec.api_url)

    def replicas(self) -> dict[str, dict[str, Any]]:
        """Per zone: pods scheduled there (desired), ready ones and their names; pods the Deployment
        wants and does not have yet count as desired under ``unscheduled``."""
        zones = self._zones()
        pods = [p for p in self._pods(self.spec.api_selector) if p.metadata.deletion_timestamp is None]
        out: dict[str, dict[str, Any]] = {z: {"desired": 0, "ready": 0, "ready_ids": []} for z in set(zones.values())}
        for p in pods:
            row = out.setdefault(self._zone_of(p, zones), {"desired": 0, "ready": 0, "ready_ids": []})
            row["desired"] += 1
            if _ready(p):
                row["ready"] += 1
                row["ready_ids"].append(p.metadata.name)
        missing = int(self._deployment().spec.replicas or 0) - len(pods)
        if missing > 0:
            out.setdefault("unscheduled", {"desired": 0, "ready": 0, "ready_ids": []})["desired"] += missing
        return out

    def primary_region(self) -> str | None:
        return self._primary(self._pods(self.spec.db_selector), self._zones())

    def _primary(self, db_pods: list[Any], zones: dict[str, str]) -> str | None:
        leaders = [p for p in db_pods if (p.metadata.labels or {}).get("role") in ("master", "primary") and _ready(p)]
        return self._zone_of(leaders[0], zones) if len(leaders) == 1 else None

    def whole(self) -> bool:
        counts = self.replicas()
        db_pods = self._pods(self.spec.db_selector)
        return (not self._cordoned() and self._switched_from() is None
                and all(c["ready"] >= c["desired"] for c in counts.values())
                and sum(c["ready"] for c in counts.values()) > 0
                and (not db_pods or self._primary(db_pods, self._zones()) is not None))  # fmt: skip

    def settled(self) -> bool:
        from kubernetes import client

        hpas = self._call(client.AutoscalingV2Api(self._api()).list_namespaced_horizontal_pod_autoscaler,
                          self.namespace).items  # fmt: skip
        floor = next((h.spec.min_replicas for h in hpas if h.spec.scale_target_ref.name == self.spec.api_deployment),
                     None)  # fmt: skip
        return (floor is None or int(self._deployment().spec.replicas or 0) <= floor) and self.whole()

    # -- faults --------------------------------------------------------------------------------
    def _wait(self, what: str, check: Callable[[], bool], timeout: float = WAIT_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(POLL_S)
        log.warning("kubernetes %s: %s not within %.0f s", self.spec.context, what, timeout)
        return False

    def _gone(self, uids: dict[str, str]) -> bool:
        """Every pod (name -> uid) is gone or terminating (a pod of the same name, new uid, is another)."""
        live = {p.metadata.name: p for p in self._pods(self.spec.api_selector) + self._pods(self.spec.db_selector)}
        return all(n not in live or live[n].metadata.uid != uid or live[n].metadata.deletion_timestamp is not None
                   for n, uid in uids.items())  # fmt: skip

    def kill_replicas(self, count: int | None = None, percent: float | None = None,
                      region: str | None = None) -> dict[str, Any]:  # fmt: skip
        zones = self._zones()
        pods = [p for p in self._pods(self.spec.api_selector)
                if _ready(p) and (region is None or self._zone_of(p, zones) == region)]  # fmt: skip
        n = count if count is not None else math.ceil(len(pods) * (percent or 0) / 100)
        if n < 1 or n > len(pods):
            raise ConfigError("arguments", f"cannot kill {n} of the {len(pods)} ready API pods"
                                           f"{f' in {region}' if region else ''}")  # fmt: skip
        victims = random.sample(pods, n)
        for p in victims:
            self._call(self._core().delete_namespaced_pod, p.metadata.name, self.namespace)
        uids = {p.metadata.name: p.metadata.uid for p in victims}
        landed = self._wait("the killed pods gone", lambda: self._gone(uids), timeout=30)
        return {"killed": sorted(uids), "landed": landed}

    def _nodes_in(self, zone: str) -> list[Any]:
        return [n for n in self._call(self._core().list_node).items
                if (n.metadata.labels or {}).get(self.spec.zone_label) == zone]  # fmt: skip

    def _cordoned(self) -> list[str]:
        return [n.metadata.name for n in self._call(self._core().list_node).items
                if (n.metadata.annotations or {}).get(CORDONED_BY) == self.cordon_mark]  # fmt: skip

    def _cordon(self, node: str, on: bool) -> None:
        body = {"spec": {"unschedulable": on}, "metadata": {"annotations": {CORDONED_BY: self.cordon_mark if on
                                                                             else None}}}  # fmt: skip
        self._call(self._core().patch_node, node, body)

    def lose_region(self, region: str) -> dict[str, Any]:
        from kubernetes import client

        nodes = self._nodes_in(region)
        if not nodes:
            raise ConfigError("arguments.region", f"no node carries {self.spec.zone_label}={region}")
        for n in nodes:
            self._cordon(n.metadata.name, True)
        names = {n.metadata.name for n in nodes}

        def drained() -> bool:
            left = [p for p in self._pods(self.spec.api_selector)
                    if p.spec.node_name in names and p.metadata.deletion_timestamp is None]  # fmt: skip
            for p in left:  # the Eviction API: a PodDisruptionBudget may refuse (429) until replacements are ready
                body = client.V1Eviction(metadata=client.V1ObjectMeta(name=p.metadata.name, namespace=self.namespace))
                try:
                    self._call(self._core().create_namespaced_pod_eviction, p.metadata.name, self.namespace, body)
                except KubeApiError as err:
                    if not _retry_later(err.status):
                        raise
                    log.info("eviction of %s refused for now: %s", p.metadata.name, err)
            return not left

        landed = self._wait(f"zone {region} drained", drained)
        return {"cordoned": sorted(names), "landed": landed}

    def restore_region(self, region: str) -> dict[str, Any]:
        nodes = [n.metadata.name for n in self._nodes_in(region)
                 if (n.metadata.annotations or {}).get(CORDONED_BY) == self.cordon_mark]  # fmt: skip
        for n in nodes:
            self._cordon(n, False)
        return {"uncordoned": nodes, "landed": not any(n in self._cordoned() for n in nodes)}

    def fail_over_database(self, mode: str = "kill-node") -> dict[str, Any]:
        if mode != "kill-node":
            raise ConfigError("arguments.mode", f"unknown failover mode {mode!r} for kubernetes: use kill-node")
        leaders = [p for p in self._pods(self.spec.db_selector) if (p.metadata.labels or {}).get("role") in
                   ("master", "primary")]  # fmt: skip
        if len(leaders) != 1:
            raise EnvironmentFailure(f"kubernetes: {len(leaders)} database primaries found ({self.spec.db_selector})")
        old = leaders[0]
        self._call(self._core().delete_namespaced_pod, old.metadata.name, self.namespace)

        new: list[str] = []

        def promoted() -> bool:
            # another member leads: a StatefulSet brings the deleted pod back under the same name,
            # and that pod taking the lead again is a restart, not a failover
            new[:] = [p.metadata.name for p in self._pods(self.spec.db_selector)
                      if (p.metadata.labels or {}).get("role") in ("master", "primary")
                      and p.metadata.name != old.metadata.name and _ready(p)]  # fmt: skip
            return bool(new)

        landed = self._wait("another database member leading", promoted, timeout=120)
        return {"old_primary": old.metadata.name, "new_primary": new[0] if new else None, "landed": landed}

    def roll_out(self, version: str, max_unavailable: int | None = None) -> dict[str, Any]:
        """Patch the image tag and wait until every pod of the Deployment runs it, ready; the
        Deployment's own strategy rolls it (``max_unavailable`` is the sandbox's override). While it
        rolls, the Deployment carries its images from before (``drillbit.dev/rolling-from``): a roll
        that did not land, or a drill killed mid-roll, is rolled back by ``heal`` (``kubectl rollout
        undo`` semantics); a roll that landed drops the mark."""
        d = self._deployment()
        containers = d.spec.template.spec.containers
        images = {c.name: f"{image_repo(c.image)}:{version}" for c in containers}
        unhealed = _rolling_mark(d)  # a roll not undone yet: its original stays the original
        before = unhealed[0] if unhealed else {c.name: c.image for c in containers}
        landed = self._set_images(d, images, mark=json.dumps({"from": before, "to": images}, sort_keys=True))
        if landed:
            self._mark_rolling(None)
        return {"version": version, "images": images, "landed": landed}

    def _set_images(self, d: Any, images: dict[str, str], mark: str | None) -> bool:
        containers = [{"name": n, "image": i} for n, i in images.items()]
        patch = {"metadata": {"annotations": {ROLLING_FROM: mark}},
                 "spec": {"template": {"spec": {"containers": containers}}}}  # fmt: skip
        self._call(self._apps().patch_namespaced_deployment, self.spec.api_deployment, self.namespace, patch)
        selector = _selector_of(d)  # its own pods (not another colour's)

        def rolled() -> bool:  # the replicas wanted now (an autoscaler may scale meanwhile), all at the images
            want = int(self._deployment().spec.replicas or 0)
            pods = [p for p in self._pods(selector) if p.metadata.deletion_timestamp is None]
            return len(pods) == want and all(_ready(p) and {c.name: c.image for c in p.spec.containers} == images
                                             for p in pods)  # fmt: skip

        return self._wait(f"every pod at {sorted(set(images.values()))}", rolled)

    def _mark_rolling(self, mark: str | None) -> None:
        patch = {"metadata": {"annotations": {ROLLING_FROM: mark}}}
        self._call(self._apps().patch_namespaced_deployment, self.spec.api_deployment, self.namespace, patch)

    def undo_roll_out(self) -> dict[str, Any]:
        """Roll back a roll drillbit started and did not see land (the images before it, from the
        Deployment's mark); nothing to undo: ``undone`` None."""
        d = self._deployment()
        mark = _rolling_mark(d)
        if mark is None:
            return {"undone": None, "landed": True}
        before, rolled_to = mark
        if {c.name: c.image for c in d.spec.template.spec.containers} != rolled_to:
            # someone deployed since (the template is not what drillbit set): theirs stands, the mark goes
            self._mark_rolling(None)
            return {"undone": None, "landed": True, "left": "the template changed since drillbit's roll"}
        landed = self._set_images(d, before, mark=None)
        return {"undone": before, "landed": landed}

    # -- blue-green ----------------------------------------------------------------------------
    def _switched_from(self, service: Any | None = None) -> dict[str, str] | None:
        """The selector this target switched the API Service away from (its annotation), else None."""
        service = service if service is not None else self._find_service()
        annotations = (service.metadata.annotations or {}) if service is not None else {}
        if annotations.get(SWITCHED_BY) != self.cordon_mark:
            return None
        try:
            previous = json.loads(annotations.get(PREVIOUS_SELECTOR) or "")
        except ValueError:
            previous = None
        if not isinstance(previous, dict) or not all(isinstance(v, str) for v in previous.values()):
            raise EnvironmentFailure(f"kubernetes: the Service {self.spec.api_service} has no readable "
                                     f"{PREVIOUS_SELECTOR} annotation: restore its selector by hand")  # fmt: skip
        return previous

    def _live_colour(self, selector: dict[str, str]) -> str:
        live = selector.get(self.spec.colour_label)
        if live is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}: the Service {self.spec.api_service}'s selector "
                                            f"({_selector(selector)}) names no {self.spec.colour_label} label: "
                                            "blue-green needs a selector that names the live colour (set "
                                            "colour_label)")  # fmt: skip
        return live

    def switch_traffic(self, to: str | None = None) -> dict[str, Any]:
        """Point the API Service at colour ``to`` (default: the other of ``colours``); not when no pod
        of that colour is ready (landed false, nothing changed)."""
        service = self._service()
        selector = dict(service.spec.selector or {})
        live = self._live_colour(selector)
        to = to or next((c for c in self.spec.colours if c != live), self.spec.colours[0])
        if to == live:
            raise ConfigError("arguments.to", f"the Service {self.spec.api_service} already selects {to}: name "
                                              "the idle colour")  # fmt: skip
        marked = (service.metadata.annotations or {}).get(SWITCHED_BY)
        if marked not in (None, self.cordon_mark):
            raise EnvironmentFailure(f"kubernetes: the Service {self.spec.api_service} was switched by drillbit "
                                     f"target {marked} and not switched back: heal that target first")  # fmt: skip
        wanted = {**selector, self.spec.colour_label: to}
        facts = {"service": self.spec.api_service, "from": live, "to": to, "selector": wanted}
        if not self._ready_names(wanted):
            reason = f"no ready pod matches {_selector(wanted)}: the Service still selects {live}"
            return {**facts, "ready_pods": [], "landed": False, "reason": reason}
        previous = self._switched_from(service) or selector  # switched twice: restore the first selector
        self._call(self._core().patch_namespaced_service, self.spec.api_service, self.namespace, {
            "metadata": {"annotations": {SWITCHED_BY: self.cordon_mark,
                                         PREVIOUS_SELECTOR: json.dumps(previous, sort_keys=True)}},
            "spec": {"selector": wanted}})  # fmt: skip
        ready = self._serving(wanted)
        return {**facts, "previous_selector": previous, "ready_pods": ready, "landed": bool(ready)}

    def _serving(self, selector: dict[str, str]) -> list[str]:
        """Read back: the ready pods the Service now selects, when its selector is exactly ``selector``."""
        now = dict(self._service().spec.selector or {})
        return self._ready_names(now) if now == selector else []

    def switch_traffic_back(self) -> dict[str, Any]:
        """Restore the selector this target switched the API Service away from (nothing to do: landed)."""
        service = self._find_service()
        previous = self._switched_from(service) if service is not None else None
        if service is None or previous is None:
            return {"service": self.spec.api_service, "restored": None, "landed": True}
        current = dict(service.spec.selector or {})
        selector: dict[str, str | None] = {**{k: None for k in current if k not in previous}, **previous}
        self._call(self._core().patch_namespaced_service, self.spec.api_service, self.namespace, {
            "metadata": {"annotations": {SWITCHED_BY: None, PREVIOUS_SELECTOR: None}},
            "spec": {"selector": selector}})  # fmt: skip
        ready = self._serving(previous)
        return {"service": self.spec.api_service, "restored": previous, "ready_pods": ready, "landed": bool(ready),
                **({} if ready else {"reason": f"no ready pod matches {_selector(previous)}"})}  # fmt: skip

    def dry_run(self) -> list[dict[str, Any]]:
        """Every kind of change a drill makes, sent with the API server's server-side dry run
        (``dryRun=All``): authorized, the object there, the patch valid, and nothing changed. One
        row per change: what, on which object, ``ok``, and the API's refusal when not."""
        from kubernetes import client

        pods = [p for p in self._pods(self.spec.api_selector) if _ready(p)]
        nodes = self._call(self._core().list_node).items
        checks: list[tuple[str, str, Callable[[], Any]]] = []
        if pods:
            pod = pods[0].metadata.name
            eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=self.namespace))
            checks += [
                ("delete a pod (kill_replicas)", f"pod/{pod}",
                 lambda: self._core().delete_namespaced_pod(pod, self.namespace, dry_run="All")),
                ("evict a pod (lose_region)", f"pod/{pod}",
                 lambda: self._core().create_namespaced_pod_eviction(pod, self.namespace, eviction, dry_run="All")),
            ]  # fmt: skip
        if nodes:
            node = nodes[0].metadata.name
            checks.append(("cordon a node (lose_region)", f"node/{node}", lambda: self._core().patch_node(
                node, {"spec": {"unschedulable": True}}, dry_run="All")))  # fmt: skip
        mark = {"metadata": {"annotations": {ROLLING_FROM: None}}}
        checks += [
            ("patch the Deployment (roll_out)", f"deployment/{self.spec.api_deployment}",
             lambda: self._apps().patch_namespaced_deployment(self.spec.api_deployment, self.namespace, mark,
                                                              dry_run="All")),
            ("patch the Service (switch_traffic)", f"service/{self.spec.api_service}",
             lambda: self._core().patch_namespaced_service(self.spec.api_service, self.namespace,
                                                           {"metadata": {"annotations": {SWITCHED_BY: None}}},
                                                           dry_run="All")),
        ]  # fmt: skip
        rows = []
        for what, obj, call in checks:
            try:
                self._call(call)
                rows.append({"change": what, "object": obj, "ok": True, "error": None})
            except EnvironmentFailure as err:
                rows.append({"change": what, "object": obj, "ok": False, "error": str(err)})
        return rows

    def heal(self) -> dict[str, Any]:
        restored = self._cordoned()
        for n in restored:
            self._cordon(n, False)
        if self.switch_traffic_back()["restored"] is not None:
            restored.append(f"service/{self.spec.api_service}")
        if self.undo_roll_out()["undone"] is not None:
            restored.append(f"deployment/{self.spec.api_deployment}")
        whole = self._wait("the target whole", self.whole, timeout=WAIT_TIMEOUT_S)
        return {"restored": restored, "whole": whole, "landed": whole}


class KubernetesKind:
    name = "kubernetes"
    spec_model = KubernetesSpec

    def check_identity(self, name: str, spec: KubernetesSpec, source: str) -> None:
        check_kube_context(name, spec, source)

    def attach(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> Target:
        return KubernetesTarget(name, spec, state_dir)

    def is_up(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> bool:
        return KubernetesTarget(name, spec, state_dir).whole()

    def up(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None,
           report: Callable[[str], None]) -> Target:  # fmt: skip
        target = KubernetesTarget(name, spec, state_dir)
        report(f"{name}: a cluster is not brought up by drillbit; checking it is whole (context {spec.context})")
        if not target.whole():
            raise EnvironmentFailure(f"{name}: the cluster's {spec.api_deployment} is not whole: check it")
        return target

    def down(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None,
             report: Callable[[str], None]) -> None:  # fmt: skip
        report(f"{name}: a cluster is not taken down by drillbit; undoing any fault drillbit left")
        KubernetesTarget(name, spec, state_dir).heal()

    def status(self, name: str, spec: KubernetesSpec, state_dir: Path | str | None) -> dict[str, Any]:
        target = KubernetesTarget(name, spec, state_dir)
        return {"up": target.whole(), "context": spec.context, "namespace": spec.namespace,
                "replicas": target.replicas(), "primary": target.primary_region(),
                "cordoned_by_drillbit": target._cordoned(),
                "switched_by_drillbit": target._switched_from()}  # fmt: skip
