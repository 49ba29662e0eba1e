"""The sandbox topology (infra/sandbox/topology.yaml), validated at the edge.

Every problem in the file is reported at once, as one line naming the file, the field and the
fix; the result is immutable.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drillbit.core.errors import ConfigError, validation_problems
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_document
from drillbit.manifests.render import render
from drillbit.manifests.sizes import DEFAULT_WORKLOAD, api_sizes, spread

__all__ = ["Backups", "Links", "Monitoring", "Topology", "default_topology", "load_topology"]

def default_topology() -> Path:
    """The project's sandbox topology (infra/sandbox/topology.yaml)."""
    return current_project().find("infra", "sandbox", "topology.yaml")

Port = Annotated[int, Field(ge=0, le=65535)]
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_SIZE = re.compile(r"^\d+(kB|MB|GB)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Model):
    name: str
    api_replicas: int = Field(default=2, ge=0, le=16)  # 0: a region with a database node and no API replica

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter")
        return v


class FrontDoor(_Model):
    port: Port = 0


class Api(_Model):
    # per replica: writes wait in their symbol's queue holding no connection, then take a write
    # connection; reads have their own pool (both sized from benchmarks/pool.py's peaks)
    write_pool_size: int = Field(default=4, ge=1, le=64)
    read_pool_size: int = Field(default=4, ge=1, le=64)
    request_timeout_s: float = Field(default=2.0, gt=0, le=60)
    readiness_path: str = Field(default="/readyz", pattern=r"^/[A-Za-z0-9/_.-]*$")  # what "ready" asks a replica


class Rollout(_Model):
    """The rolling update's budget, per region (the sandbox rolls one region at a time)."""

    max_surge: int = Field(default=0, ge=0, le=16)  # extra replicas started before old ones go
    max_unavailable: int = Field(default=1, ge=0, le=16)  # old replicas taken down at once

    @model_validator(mode="after")
    def _one_of_them(self) -> Rollout:
        if not (self.max_surge or self.max_unavailable):
            raise ValueError("max_surge and max_unavailable are both 0: nothing could ever be replaced; raise one")
        return self


class Autoscaling(_Model):
    enabled: bool = True
    max_replicas: int = Field(default=4, ge=1, le=16)  # per region; the minimum is the region's api_replicas
    metric: Literal["rps", "cpu"] = "rps"  # requests/s per replica, or percent of one core per replica
    target_rps: float = Field(default=40.0, gt=0, le=100_000)  # per replica (metric rps)
    target_cpu_percent: float = Field(default=60.0, gt=0, le=100)  # per replica (metric cpu)

    @property
    def target(self) -> float:
        return self.target_rps if self.metric == "rps" else self.target_cpu_percent
    scale_down_stabilization_s: float = Field(default=30.0, ge=0)
    interval_s: float = Field(default=1.0, gt=0, le=60)


class Etcd(_Model):
    client_port: Port = 0
    peer_port: Port = 0


class Database(_Model):
    name: str = "trading"
    user: str = "trading"
    shared_buffers: str = "32MB"
    synchronous_mode: bool = False

    @field_validator("shared_buffers")
    @classmethod
    def _size(cls, v: str) -> str:
        if not _SIZE.match(v):
            raise ValueError("must look like 32MB (a number and kB, MB or GB)")
        return v


class Patroni(_Model):
    ttl: int = Field(default=20, ge=20)
    loop_wait: int = Field(default=1, ge=1)
    retry_timeout: int = Field(default=3, ge=3)
    primary_start_timeout: int = Field(default=0, ge=0)
    maximum_lag_on_failover: int = Field(default=1048576, ge=0)

    @model_validator(mode="after")
    def _patroni_rule(self) -> Patroni:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                "Patroni requires loop_wait + 2 * retry_timeout <= ttl "
                f"({self.loop_wait} + 2 * {self.retry_timeout} > {self.ttl}): raise ttl"
            )
        return self


class Monitoring(_Model):
    """Real Prometheus and Alertmanager (Debian's) beside the sandbox, with the platform's own rules
    (infra/monitoring): off by default (``drill env up --with-monitoring`` turns it on)."""

    enabled: bool = False
    scrape_interval_s: float = Field(default=1.0, ge=0.5, le=60)
    evaluation_interval_s: float = Field(default=1.0, ge=0.5, le=60)
    rules: str = Field(default="../monitoring/rules", min_length=1)  # relative to the topology file
    alertmanager: str = Field(default="../monitoring/alertmanager.yml", min_length=1)


class Links(_Model):
    """The inter-region links through drillbit's link proxy (``drillbit.targets.sandbox.links``): the
    replication stream, each region's way to the witness, the API replicas' way to the other region's
    database. Off by default; the network faults (partition_region, degrade_link, isolate_witness) need it."""

    enabled: bool = False


class Backups(_Model):
    """Continuous WAL archiving and base backups to an S3 bucket on loopback (``drillbit.targets.sandbox.backups``):
    off by default; the pitr-restore drill needs it."""

    enabled: bool = False
    # a forced WAL switch at least this often under load: the bound on how old the newest archived WAL is
    # (each switch writes, archives and streams a whole 16 MB segment: 30 s keeps that to ~32 MB/min)
    archive_timeout_s: int = Field(default=30, ge=1, le=3600)


class Topology(_Model):
    regions: list[Region] = Field(min_length=2, max_length=4)
    # the deployment manifests this sandbox stands in for (a kustomize overlay, relative to the
    # topology file): the API's replicas and autoscaling come from them (load_topology), and every
    # drill records them, hashed and checked, in run.json and the report
    manifests: str | None = Field(default=None, min_length=1)
    api_workload: str = Field(default=DEFAULT_WORKLOAD, min_length=1)  # its Deployment in the manifests
    front_door: FrontDoor = FrontDoor()
    api: Api = Api()
    rollout: Rollout = Rollout()
    autoscaling: Autoscaling = Autoscaling()
    etcd: Etcd = Etcd()
    database: Database = Database()
    patroni: Patroni = Patroni()
    monitoring: Monitoring = Monitoring()
    links: Links = Links()
    backups: Backups = Backups()

    @model_validator(mode="after")
    def _unique(self) -> Topology:
        names = [r.name for r in self.regions]
        if len(set(names)) != len(names):
            raise ValueError("region names must be unique")
        too_many = [
            r.name for r in self.regions if self.autoscaling.enabled and r.api_replicas > self.autoscaling.max_replicas
        ]
        if too_many:
            raise ValueError(f"autoscaling.max_replicas is below api_replicas of {', '.join(too_many)}: raise it")
        if not any(r.api_replicas for r in self.regions):
            raise ValueError("regions: no region runs an API replica: give one api_replicas >= 1")
        empty = [r.name for r in self.regions if not r.api_replicas]
        if empty and self.autoscaling.enabled:
            raise ValueError(f"autoscaling: {', '.join(empty)} run(s) no API replica and the autoscaler scales every "
                             "region from its own size: disable autoscaling or give each region a replica")  # fmt: skip
        if self.links.enabled and len(self.regions) != 2:
            raise ValueError("links.enabled models two regions and the witness: give exactly two regions, "
                             "or disable links")  # fmt: skip
        fixed = [p for p in (self.front_door.port, self.etcd.client_port, self.etcd.peer_port) if p]
        if len(set(fixed)) != len(fixed):
            raise ValueError("front_door.port, etcd.client_port and etcd.peer_port must differ")
        return self

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.regions)
        raise ConfigError("region", f"unknown region {name!r}: use one of {known}")


def parse_topology(data: Any, source: str) -> Topology:
    """Validate already-parsed data; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, "expected a mapping at the top level (regions:, front_door:, ...)")
    try:
        return Topology.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, validation_problems(err)) from None


#: what the manifests decide when a topology names them (set here too, they would disagree one day)
FROM_MANIFESTS = ("regions[].api_replicas", "autoscaling.enabled", "autoscaling.max_replicas", "autoscaling.metric",
                  "autoscaling.target_rps", "autoscaling.target_cpu_percent", "rollout.max_surge",
                  "rollout.max_unavailable", "api.readiness_path")  # fmt: skip


def _sized_from_manifests(data: dict[str, Any], base: Path, source: str) -> dict[str, Any]:
    """``data`` with the API's replicas per region and its autoscaling taken from the manifests it
    names: the Deployment's replicas (the HPA's minimum when an HPA scales it) and the HPA's
    maximum spread over the regions with maxSkew 1, the HPA's target as the autoscaler's; the
    rolling update's maxSurge/maxUnavailable and the readiness probe's path."""
    regions = data.get("regions")
    if not isinstance(regions, list) or not regions or not all(isinstance(r, dict) for r in regions):
        return data  # the model reports what is wrong with regions
    auto: dict[str, Any] = data["autoscaling"] if isinstance(data.get("autoscaling"), dict) else {}
    given = [f"regions[{i}].api_replicas" for i, r in enumerate(regions) if "api_replicas" in r]
    given += [f"autoscaling.{k}" for k in ("enabled", "max_replicas", "metric", "target_rps",
                                           "target_cpu_percent") if k in auto]  # fmt: skip
    roll: dict[str, Any] = data["rollout"] if isinstance(data.get("rollout"), dict) else {}
    api: dict[str, Any] = data["api"] if isinstance(data.get("api"), dict) else {}
    given += [f"rollout.{k}" for k in ("max_surge", "max_unavailable") if k in roll]
    given += ["api.readiness_path"] if "readiness_path" in api else []
    if given:
        raise ConfigError(source, f"{', '.join(given)}: set by the manifests this topology names (manifests: "
                                  f"{data['manifests']}): change them there, or drop manifests:")  # fmt: skip
    where = base / str(data["manifests"])
    try:
        objects = render(where, origins=False).objects
    except ConfigError as err:
        raise ConfigError(source, f"manifests: {data['manifests']}: {'; '.join(err.problems)}") from None
    sizes = api_sizes(objects, str(data.get("api_workload") or DEFAULT_WORKLOAD), f"{source}: manifests ({where})")
    low = spread(sizes.replicas, len(regions))
    if min(low) < 1 and sizes.autoscaling:
        raise ConfigError(source, f"manifests: {sizes.source} gives {sizes.replicas} replica(s) for "
                                  f"{len(regions)} regions and an HPA: the sandbox autoscales only regions that run "
                                  "a replica; give it one per region or drop the HPA")  # fmt: skip
    high = max(math.ceil(sizes.max_replicas / len(regions)), max(low))
    autoscaling = {**auto, "enabled": sizes.autoscaling, "max_replicas": high, "metric": sizes.metric}
    if sizes.autoscaling:
        autoscaling["target_rps" if sizes.metric == "rps" else "target_cpu_percent"] = sizes.target
    rollout = {"max_surge": min(sizes.max_surge, 16), "max_unavailable": min(sizes.max_unavailable, 16)}
    api = {**api, "readiness_path": sizes.readiness_path} if sizes.readiness_path else api
    return {**data, "regions": [{**r, "api_replicas": n} for r, n in zip(regions, low, strict=True)],
            "autoscaling": autoscaling, "rollout": rollout, "api": api}  # fmt: skip


def load_topology(path: Path | str | None = None) -> Topology:
    """Read and validate a topology file (the packaged default when ``path`` is None); a topology that
    names its manifests takes the API's sizes from them (:data:`FROM_MANIFESTS`)."""

    p = Path(path) if path is not None else default_topology()
    data = load_document(p, missing="file not found: pass an existing topology file")
    if isinstance(data, dict) and isinstance(data.get("manifests"), str) and data["manifests"]:
        data = _sized_from_manifests(data, p.resolve().parent, str(p))
    return parse_topology(data, str(p))
