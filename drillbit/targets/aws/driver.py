"""The aws target: an AWS staging environment drilled through chaostoolkit-aws actions and boto3.

Faults (each returns ``landed``, read back through the AWS APIs, never assumed from the request):

- ``fail_over_database("failover")`` (also ``kill-node``): chaosaws ``rds.failover_db_cluster`` to a
  reader of ``db_cluster``; landed when ``describe_db_clusters`` names another writer.
  ``"global"`` / ``"global-unplanned"``: ``failover_global_cluster`` of ``global_cluster`` to
  ``secondary_db_cluster`` (AllowDataLoss for the unplanned one); landed when the global database's
  writer member is the secondary cluster;
- ``lose_region(AZ)`` (e.g. ``eu-west-1a``): the application tier's instances in the AZ stopped
  (chaosaws ``ec2.stop_instances(az=...)``), or, with ``az_loss: isolate-subnets``, the tier's
  subnets there associated with a deny-all network ACL (their original ACLs kept); landed when every
  such instance is stopping/stopped, or every subnet is on the deny ACL;
- ``lose_region(REGION)``: the primary's Route 53 health check forced unhealthy (Disabled and
  Inverted: Route 53 then counts it unhealthy whatever its checkers see) and the region's application
  tier stopped; landed when both read back and, with ``dns``, the failover record answers the
  secondary;
- ``kill_replicas``: application-tier instances stopped.

Every lasting change is marked in the state directory before it is made (``marks``);
``restore_region`` and ``heal`` undo the marks (idempotent), so a later process heals a crashed drill.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets.aws.client import Aws, AwsApiError
from drillbit.targets.aws.marks import MARKS, Marks
from drillbit.targets.aws.spec import AwsSpec
from drillbit.targets.base import Endpoints
from drillbit.targets.http import readyz

__all__ = ["AwsTarget"]

log = logging.getLogger(__name__)

WAIT_TIMEOUT_S = 300.0
POLL_S = 0.5
GONE = ("shutting-down", "terminated")
DOWN = ("stopping", "stopped")
AZ = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d)([a-z])$")
HEALTHY_SHARE = 0.18  # Route 53: healthy when more than 18 % of its checkers say so
LAG_WINDOW_S = 300  # the replica lag: the newest datapoint of the last five minutes
UNSUPPORTED = ("404", "NotImplemented", "InvalidAction", "UnknownOperationException")


class AwsTarget:
    kind = "aws"

    def __init__(self, name: str, spec: AwsSpec, state_dir: Path | str | None = None, aws: Aws | None = None) -> None:
        self.name, self.spec = name, spec
        self.aws = aws or Aws(spec)
        self._state_dir = Path(state_dir) if state_dir else Path(".drill") / "aws" / name
        self.marks = Marks(self._state_dir / MARKS)
        self.wait_timeout_s = WAIT_TIMEOUT_S

    # -- plumbing ------------------------------------------------------------------------------
    def _wait(self, what: str, check: Callable[[], bool], timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (self.wait_timeout_s if timeout is None else timeout)
        while True:
            if check():
                return True
            if time.monotonic() >= deadline:
                log.warning("aws %s: not %s within the timeout", self.name, what)
                return False
            time.sleep(POLL_S)

    def _chaosaws(self, fn: Callable[..., Any], region: str, **kwargs: Any) -> Any:
        """A chaosaws action, pointed at this target (its region, profile and endpoint)."""
        from chaoslib.exceptions import ChaosException

        self.aws.operations.append(f"chaosaws:{fn.__module__.removeprefix('chaosaws.')}.{fn.__name__}")
        self.aws.calls += 1
        with self.aws.scope(region):
            try:
                return fn(configuration=self.aws.chaos_configuration(region), **kwargs)
            except ChaosException as err:
                raise EnvironmentFailure(f"aws {self.name}: {fn.__name__}: {err}") from None

    def _tag_filters(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(self.spec.app_tier.items())]

    def _instances(self, region: str, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The application tier's instances in ``region`` (terminated ones aside)."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Filters": [*self._tag_filters(), *(extra or [])]}
        while True:
            page = self.aws.call("ec2", "describe_instances", region, **kwargs)
            out += [i for r in page.get("Reservations", []) for i in r.get("Instances", [])
                    if i["State"]["Name"] not in GONE]  # fmt: skip
            if not page.get("NextToken"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    def _states(self, region: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        page = self.aws.call("ec2", "describe_instances", region, InstanceIds=ids)
        return {i["InstanceId"]: i["State"]["Name"] for r in page.get("Reservations", []) for i in r["Instances"]}

    def _region_of(self, place: str) -> tuple[str, str | None]:
        """(region, AZ or None) of a ``lose_region`` argument: one of the regions or an AZ of one."""
        if place in self.spec.regions.allowed():
            return place, None
        m = AZ.match(place)
        if m and m.group(1) in self.spec.regions.allowed():
            return m.group(1), place
        raise ConfigError("arguments.region", f"{place!r} is neither one of the target's regions "
                                              f"({', '.join(self.spec.regions.allowed())}) nor an availability zone "
                                              "of one: name a region or an AZ such as "
                                              f"{self.spec.regions.primary}a")  # fmt: skip

    # -- the protocol: reading -----------------------------------------------------------------
    def state_dir(self) -> str:
        return str(self._state_dir)

    def activity_scope(self) -> AbstractContextManager[None]:
        """Plain chaosaws activities of the experiment act on this target: its primary region,
        profile and endpoint, whatever the shell's AWS_* variables say."""
        return self.aws.scope()

    def endpoints(self) -> Endpoints:
        return Endpoints(api_url=self.spec.api_url.rstrip("/"), heartbeat_via="api")

    def dry_run(self) -> list[dict[str, Any]]:
        return []  # RDS and Route 53 have no dry run: the IAM policy in the README is the check

    def fingerprint(self) -> dict[str, Any]:
        return {"account_allowlist": list(self.spec.accounts), "regions": list(self.spec.regions.allowed()),
                "db_cluster": self.spec.db_cluster, "global_cluster": self.spec.global_cluster,
                "health_check": self.spec.health_check, "app_tier": dict(self.spec.app_tier),
                "writer": self.writer(), "emulator": self.spec.endpoint_url is not None}  # fmt: skip

    def ready(self) -> bool:
        return readyz(self.spec.api_url)

    def replicas(self) -> dict[str, dict[str, Any]]:
        """Per AZ of every region: the application tier's instances (desired) and the running ones."""
        out: dict[str, dict[str, Any]] = {}
        for region in self.spec.regions.allowed():
            for i in self._instances(region):
                az = out.setdefault(i["Placement"]["AvailabilityZone"], {"desired": 0, "ready": 0, "ready_ids": []})
                az["desired"] += 1
                if i["State"]["Name"] == "running":
                    az["ready"] += 1
                    az["ready_ids"].append(i["InstanceId"])
        return out

    def _cluster(self, cluster_id: str, region: str | None = None) -> dict[str, Any]:
        clusters = self.aws.call("rds", "describe_db_clusters", region, DBClusterIdentifier=cluster_id)["DBClusters"]
        return dict(clusters[0])

    def writer(self) -> str | None:
        """The writer instance of ``db_cluster`` (None: no cluster configured, or no writer now)."""
        if self.spec.db_cluster is None:
            return None
        members = self._cluster(self.spec.db_cluster).get("DBClusterMembers", [])
        return next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)

    def global_writer(self) -> str | None:
        """The ARN of the global database's writer cluster."""
        if self.spec.global_cluster is None:
            return None
        found = self.aws.call("rds", "describe_global_clusters", GlobalClusterIdentifier=self.spec.global_cluster)
        members = found["GlobalClusters"][0].get("GlobalClusterMembers", [])
        return next((m["DBClusterArn"] for m in members if m.get("IsWriter")), None)

    def primary_region(self) -> str | None:
        if self.spec.global_cluster is not None:
            arn = self.global_writer()
            return arn.split(":")[3] if arn else None
        if self.spec.db_cluster is not None:
            return self.spec.regions.primary if self.writer() else None
        return self.spec.regions.primary

    def health_check_config(self) -> dict[str, Any]:
        if self.spec.health_check is None:
            return {}
        found = self.aws.call("route53", "get_health_check", HealthCheckId=self.spec.health_check)
        return dict(found["HealthCheck"]["HealthCheckConfig"])

    def health_check_healthy(self, check_id: str | None = None) -> bool:
        """Route 53's view: a disabled check is healthy unless inverted; otherwise > 18 % of its
        checkers report success, inverted when the check is."""
        check_id = check_id or self.spec.health_check
        if check_id is None:
            return True
        found = self.aws.call("route53", "get_health_check", HealthCheckId=check_id)
        config = found["HealthCheck"]["HealthCheckConfig"]
        inverted = bool(config.get("Inverted"))
        if config.get("Disabled"):
            return not inverted
        seen = self.aws.call("route53", "get_health_check_status", HealthCheckId=check_id)["HealthCheckObservations"]
        if not seen:
            raise EnvironmentFailure(f"aws {self.name}: health check {check_id} has no observations yet")
        ok = sum(str(o["StatusReport"]["Status"]).startswith("Success") for o in seen) / len(seen)
        return (ok > HEALTHY_SHARE) != inverted

    def dns_answer(self) -> dict[str, Any]:
        """What Route 53 answers for the service's name: ``test_dns_answer``; where the API has no such
        operation (an emulator), the failover records as Route 53 resolves them (the PRIMARY's values
        while its health check is healthy, else the SECONDARY's)."""
        dns = self.spec.dns
        if dns is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}.dns: required to read the DNS answer "
                                            "({zone_id, name, type} of the failover record)")  # fmt: skip
        try:
            got = self.aws.call("route53", "test_dns_answer", HostedZoneId=dns.zone_id, RecordName=dns.name,
                                RecordType=dns.type)  # fmt: skip
            return {"answer": sorted(got.get("RecordData", [])), "source": "test_dns_answer",
                    "code": got.get("ResponseCode")}  # fmt: skip
        except AwsApiError as err:
            if err.code not in UNSUPPORTED:
                raise
        name = dns.name.rstrip(".") + "."
        sets = self.aws.call("route53", "list_resource_record_sets", HostedZoneId=dns.zone_id, StartRecordName=name,
                             StartRecordType=dns.type)["ResourceRecordSets"]  # fmt: skip
        failover = {r.get("Failover"): r for r in sets if r["Name"] == name and r["Type"] == dns.type}
        if "PRIMARY" not in failover or "SECONDARY" not in failover:
            raise EnvironmentFailure(f"aws {self.name}: {name} {dns.type} has no PRIMARY and SECONDARY failover "
                                     "records")  # fmt: skip
        healthy = self.health_check_healthy(failover["PRIMARY"].get("HealthCheckId"))
        chosen = failover["PRIMARY" if healthy else "SECONDARY"]
        values = [r["Value"] for r in chosen.get("ResourceRecords", [])] or [chosen["AliasTarget"]["DNSName"]]
        return {"answer": sorted(values), "source": "failover records", "primary_healthy": healthy,
                "record": chosen.get("SetIdentifier")}  # fmt: skip

    def _primary_answer(self) -> list[str]:
        dns = self.spec.dns
        assert dns is not None
        name = dns.name.rstrip(".") + "."
        sets = self.aws.call("route53", "list_resource_record_sets", HostedZoneId=dns.zone_id, StartRecordName=name,
                             StartRecordType=dns.type)["ResourceRecordSets"]  # fmt: skip
        primary = next((r for r in sets if r["Name"] == name and r.get("Failover") == "PRIMARY"), None)
        if primary is None:
            return []
        return sorted([r["Value"] for r in primary.get("ResourceRecords", [])] or [primary["AliasTarget"]["DNSName"]])

    def whole(self) -> bool:
        """Nothing drillbit changed is left, every application-tier instance runs, the health check is
        not forced, and the database has a writer."""
        if self.marks.load():
            return False
        replicas = self.replicas()
        if not replicas or any(r["ready"] < r["desired"] for r in replicas.values()):
            return False
        config = self.health_check_config()
        if config.get("Disabled") and config.get("Inverted"):
            return False
        return self.spec.db_cluster is None or self.writer() is not None

    def settled(self) -> bool:
        return self.whole()

    # -- faults --------------------------------------------------------------------------------
    def fail_over_database(self, mode: str = "failover") -> dict[str, Any]:
        if mode in ("failover", "kill-node"):
            return self._fail_over_cluster()
        if mode in ("global", "global-unplanned"):
            return self._fail_over_global(allow_data_loss=mode == "global-unplanned")
        raise ConfigError("arguments.mode", f"unknown failover mode {mode!r} for aws: use failover (Aurora, in "
                                            "the primary region), global or global-unplanned (the global "
                                            "database)")  # fmt: skip

    def _fail_over_cluster(self) -> dict[str, Any]:
        from chaosaws.rds.actions import failover_db_cluster

        cluster_id = self.spec.db_cluster
        if cluster_id is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}.db_cluster: required for a database failover "
                                            "(the Aurora cluster ID)")  # fmt: skip
        members = self._cluster(cluster_id).get("DBClusterMembers", [])
        old = next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)
        readers = [m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")]
        if not readers:
            return {"cluster": cluster_id, "old_writer": old, "new_writer": old, "landed": False,
                    "reason": "the cluster has no reader to fail over to"}  # fmt: skip
        target = readers[0]
        self._chaosaws(failover_db_cluster, self.spec.regions.primary, db_cluster_identifier=cluster_id,
                       target_db_instance_identifier=target)  # fmt: skip
        new: list[str | None] = [None]

        def changed() -> bool:
            new[0] = self.writer()
            return new[0] is not None and new[0] != old

        landed = self._wait("the writer changed", changed)
        return {"cluster": cluster_id, "old_writer": old, "requested": target, "new_writer": new[0], "landed": landed}

    def _fail_over_global(self, *, allow_data_loss: bool) -> dict[str, Any]:
        if self.spec.global_cluster is None or self.spec.secondary_db_cluster is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}.global_cluster: required (with "
                                            "secondary_db_cluster) for a global database failover")  # fmt: skip
        secondary = self.spec.regions.secondary
        assert secondary is not None  # the spec requires it with global_cluster
        target_arn = self._cluster(self.spec.secondary_db_cluster, secondary)["DBClusterArn"]
        old = self.global_writer()
        if old == target_arn:
            return {"global_cluster": self.spec.global_cluster, "old_writer": old, "new_writer": old, "landed": False,
                    "reason": "the secondary cluster already writes: nothing to fail over"}  # fmt: skip
        kwargs: dict[str, Any] = {"AllowDataLoss": True} if allow_data_loss else {}
        self.aws.call("rds", "failover_global_cluster", GlobalClusterIdentifier=self.spec.global_cluster,
                      TargetDbClusterIdentifier=target_arn, **kwargs)  # fmt: skip
        landed = self._wait("the secondary writing", lambda: self.global_writer() == target_arn)
        return {"global_cluster": self.spec.global_cluster, "old_writer": old, "new_writer": self.global_writer(),
                "target": target_arn, "allow_data_loss": allow_data_loss, "landed": landed}  # fmt: skip

    def _stop(self, region: str, ids: list[str], scope: str, **stop: Any) -> dict[str, Any]:
        """Stop ``ids`` (marked first, so heal starts them again); landed when each is stopping/stopped."""
        from chaosaws.ec2.actions import stop_instances

        mark = self.marks.add("instances", scope=scope, region=region, ids=ids)
        answers = self._chaosaws(stop_instances, region, **(stop or {"instance_ids": ids}))
        stopped = sorted({s["InstanceId"] for a in answers or [] for s in a.get("StoppingInstances", [])} | set(ids))
        if set(stopped) != set(ids):
            self.marks.update(mark, ids=stopped)
        landed = self._wait("the instances stopped", lambda: all(s in DOWN for s in self._states(region, stopped)
                                                                   .values()))  # fmt: skip
        return {"stopped": stopped, "landed": landed and bool(stopped)}

    def kill_replicas(self, count: int | None = None, percent: float | None = None,
                      region: str | None = None) -> dict[str, Any]:  # fmt: skip
        regions = [self._region_of(region)[0]] if region else list(self.spec.regions.allowed())
        running = [(r, i["InstanceId"]) for r in regions for i in self._instances(r) if i["State"]["Name"] == "running"]
        n = count if count is not None else math.ceil(len(running) * (percent or 0) / 100)
        if n < 1 or n > len(running):
            raise ConfigError("arguments", f"kill_replicas: {n} of {len(running)} running application-tier instances: "
                                           "give a count between 1 and that")  # fmt: skip
        chosen = random.sample(running, n)
        out: dict[str, Any] = {"stopped": [], "landed": True}
        for r in sorted({r for r, _ in chosen}):
            done = self._stop(r, sorted(i for rr, i in chosen if rr == r), "kill_replicas")
            out["stopped"] += done["stopped"]
            out["landed"] = out["landed"] and done["landed"]
        return out

    def lose_region(self, region: str) -> dict[str, Any]:
        where, az = self._region_of(region)
        return self._lose_az(where, az) if az is not None else self._lose_whole_region(where)

    def _lose_az(self, region: str, az: str) -> dict[str, Any]:
        running = self._instances(region, [{"Name": "availability-zone", "Values": [az]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])  # fmt: skip
        if not running:
            return {"az": az, "landed": False, "reason": f"no running application-tier instance in {az}"}
        if self.spec.az_loss == "isolate-subnets":
            return {"az": az, "mode": "isolate-subnets", **self._isolate(region, az, running)}
        ids = sorted(i["InstanceId"] for i in running)
        filters = [*self._tag_filters(), {"Name": "instance-state-name", "Values": ["running"]}]
        return {"az": az, "mode": "stop-instances", **self._stop(region, ids, az, az=az,
                                                                  filters=filters)}  # fmt: skip

    def _acl_of(self, region: str, subnet: str) -> tuple[str, str]:
        """(network ACL, association ID) of a subnet now."""
        where = [{"Name": "association.subnet-id", "Values": [subnet]}]
        acls = self.aws.call("ec2", "describe_network_acls", region, Filters=where)["NetworkAcls"]
        for acl in acls:
            for a in acl.get("Associations", []):
                if a.get("SubnetId") == subnet:
                    return acl["NetworkAclId"], a["NetworkAclAssociationId"]
        raise EnvironmentFailure(f"aws {self.name}: subnet {subnet} has no network ACL association")

    def _isolate(self, region: str, az: str, running: list[dict[str, Any]]) -> dict[str, Any]:
        by_vpc: dict[str, set[str]] = {}
        for i in running:
            by_vpc.setdefault(i["VpcId"], set()).add(i["SubnetId"])
        isolated: dict[str, str] = {}
        for vpc, subnets in sorted(by_vpc.items()):
            deny = self.aws.call("ec2", "create_network_acl", region, VpcId=vpc, TagSpecifications=[{
                "ResourceType": "network-acl", "Tags": [{"Key": "drillbit:isolates", "Value": az},
                                                        {"Key": "Name", "Value": f"drillbit-deny-all-{az}"}]}],
            )["NetworkAcl"]["NetworkAclId"]  # fmt: skip  (a new network ACL denies everything)
            original = {s: self._acl_of(region, s)[0] for s in sorted(subnets)}
            self.marks.add("acl", scope=az, region=region, vpc=vpc, deny_acl=deny, original=original)
            for s in sorted(subnets):
                self.aws.call("ec2", "replace_network_acl_association", region,
                              AssociationId=self._acl_of(region, s)[1], NetworkAclId=deny)  # fmt: skip
                isolated[s] = deny
        landed = all(self._acl_of(region, s)[0] == acl for s, acl in isolated.items())
        return {"isolated_subnets": sorted(isolated), "deny_acls": sorted(set(isolated.values())), "landed": landed}

    def _lose_whole_region(self, region: str) -> dict[str, Any]:
        out: dict[str, Any] = {"region": region}
        checks: list[bool] = []
        if region == self.spec.regions.primary and self.spec.health_check is not None:
            config = self.health_check_config()
            if not any(m["kind"] == "health-check" for m in self.marks.load()):
                self.marks.add("health-check", scope=region, region=region, check=self.spec.health_check,
                               before={"Disabled": bool(config.get("Disabled")),
                                       "Inverted": bool(config.get("Inverted"))})  # fmt: skip
            self.aws.call("route53", "update_health_check", HealthCheckId=self.spec.health_check, Disabled=True,
                          Inverted=True)  # fmt: skip
            forced = self.health_check_config()
            out["health_check"] = {"id": self.spec.health_check, "forced_unhealthy": bool(
                forced.get("Disabled") and forced.get("Inverted"))}  # fmt: skip
            checks.append(out["health_check"]["forced_unhealthy"])
        ids = sorted(i["InstanceId"] for i in self._instances(region) if i["State"]["Name"] == "running")
        if ids:
            out.update(self._stop(region, ids, region))
            checks.append(out["landed"])
        else:
            out["stopped"] = []
            checks.append(False)
            out["reason"] = f"no running application-tier instance in {region}"
        if self.spec.dns is not None and region == self.spec.regions.primary:
            primary = self._primary_answer()
            moved = self._wait("the DNS answer off the primary", lambda: self.dns_answer()["answer"] != primary)
            out["dns_answer"] = self.dns_answer()
            checks.append(moved)
        out["landed"] = all(checks)
        return out

    def restore_region(self, region: str) -> dict[str, Any]:
        """Undo what ``lose_region(region)`` did (its marks), and wait until the region's tier runs."""
        where, _az = self._region_of(region)
        restored: list[str] = []
        for mark in self.marks.load():
            if mark.get("scope") == region:
                restored += self._undo(mark)

        def back() -> bool:
            if any(m.get("scope") == region for m in self.marks.load()):
                return False
            return all(i["State"]["Name"] == "running" for i in self._instances(where))

        return {"region": region, "restored": restored, "landed": self._wait(f"{region} restored", back)}

    # -- undoing -------------------------------------------------------------------------------
    def _undo(self, mark: dict[str, Any]) -> list[str]:
        undo = {"instances": self._undo_instances, "acl": self._undo_acl, "health-check": self._undo_health_check}
        if mark["kind"] not in undo:
            raise EnvironmentFailure(f"aws {self.name}: {self.marks.path}: unknown mark {mark['kind']!r}: undo it by "
                                     "hand and remove it")  # fmt: skip
        done = undo[mark["kind"]](mark)
        self.marks.remove(mark["id"])
        return done

    def _undo_instances(self, mark: dict[str, Any]) -> list[str]:
        from chaosaws.ec2.actions import start_instances

        region, ids = mark["region"], list(mark["ids"])
        states = self._states(region, ids)
        self._wait("the instances stopped before starting them",
                   lambda: "stopping" not in self._states(region, ids).values())  # fmt: skip
        to_start = sorted(i for i, s in self._states(region, ids).items() if s == "stopped")
        if to_start:
            self._chaosaws(start_instances, region, instance_ids=to_start)
        self._wait("the instances running", lambda: all(s == "running" for s in self._states(region, ids).values()))
        return [f"instance/{i}" for i in sorted(states)]

    def _undo_acl(self, mark: dict[str, Any]) -> list[str]:
        region, deny = mark["region"], mark["deny_acl"]
        for subnet, acl in sorted(mark["original"].items()):
            now, association = self._acl_of(region, subnet)
            if now != acl:
                self.aws.call("ec2", "replace_network_acl_association", region, AssociationId=association,
                              NetworkAclId=acl)  # fmt: skip
        try:
            self.aws.call("ec2", "delete_network_acl", region, NetworkAclId=deny)
        except AwsApiError as err:
            if err.code != "InvalidNetworkAclID.NotFound":
                raise
        return [f"subnet/{s}" for s in sorted(mark["original"])]

    def _undo_health_check(self, mark: dict[str, Any]) -> list[str]:
        before = mark["before"]
        self.aws.call("route53", "update_health_check", HealthCheckId=mark["check"], Disabled=before["Disabled"],
                      Inverted=before["Inverted"])  # fmt: skip
        return [f"health-check/{mark['check']}"]

    def roll_out(self, version: str, max_unavailable: int | None = None) -> dict[str, Any]:
        raise ConfigError("arguments", "roll_out: the aws target does not deploy: roll out through a kubernetes "
                                       "target (EKS) or your pipeline")  # fmt: skip

    def heal(self) -> dict[str, Any]:
        restored: list[str] = []
        for mark in self.marks.load():
            restored += self._undo(mark)
        whole = self._wait("the target whole", self.whole)
        return {"restored": restored, "whole": whole, "landed": whole}

    def pending(self) -> Iterator[dict[str, Any]]:
        """The marks not undone yet (for ``drill env status``)."""
        yield from self.marks.load()

    # -- what the samplers read (drillbit.probes.aws) -----------------------------------------------
    def sampling(self) -> dict[str, float]:
        return {"sample_interval_s": self.spec.sample_interval_s, "alarm_poll_s": self.spec.alarm_poll_s}

    def alarm_names(self) -> list[str]:
        return list(self.spec.alarms)

    def alarm_states(self) -> dict[str, dict[str, Any]]:
        if not self.spec.alarms:
            return {}
        got = self.aws.call("cloudwatch", "describe_alarms", AlarmNames=list(self.spec.alarms))
        out = {}
        for a in [*got.get("MetricAlarms", []), *got.get("CompositeAlarms", [])]:
            changed = a.get("StateUpdatedTimestamp")
            out[a["AlarmName"]] = {"state": a["StateValue"], "reason": a.get("StateReason"),
                                   "changed_at": changed.timestamp() if changed is not None else None}  # fmt: skip
        return out

    def replica_lag(self) -> float:
        """The newest ``lag_metric`` datapoint (Maximum, 1-minute periods) of the last five minutes;
        raises when CloudWatch has none (the lag is then unmeasured, never 0)."""
        cluster = self.spec.db_cluster
        if cluster is None:
            raise ConfigError("drill.yaml", f"targets.{self.name}.db_cluster: required to read the replica lag")
        now = dt.datetime.now(dt.UTC)
        got = self.aws.call("cloudwatch", "get_metric_statistics", Namespace="AWS/RDS",
                            MetricName=self.spec.lag_metric, Period=60, Statistics=["Maximum"],
                            Dimensions=[{"Name": "DBClusterIdentifier", "Value": cluster}],
                            StartTime=now - dt.timedelta(seconds=LAG_WINDOW_S),
                            EndTime=now + dt.timedelta(seconds=60))  # fmt: skip
        points = sorted(got.get("Datapoints", []), key=lambda p: p["Timestamp"])
        if not points:
            raise EnvironmentFailure(f"no {self.spec.lag_metric} datapoint for {cluster} in the last {LAG_WINDOW_S} s")
        return float(points[-1]["Maximum"])

    def readings(self) -> tuple[list[tuple[str, str, str, float | None]], list[str]]:
        rows: list[tuple[str, str, str, float | None]] = []
        failed: list[str] = []
        spec = self.spec

        def writer() -> None:
            if spec.db_cluster is not None:
                rows.append(("db_writer", spec.db_cluster, self.writer() or "", None))
            if spec.global_cluster is not None:
                rows.append(("global_writer", spec.global_cluster, self.global_writer() or "", None))

        def lag() -> None:
            if spec.db_cluster is not None:
                rows.append(("replica_lag", spec.db_cluster, spec.lag_metric, self.replica_lag()))

        def instances() -> None:
            for az, r in sorted(self.replicas().items()):
                rows.append(("instances", az, f"{r['ready']}/{r['desired']} running", float(r["ready"])))

        def health() -> None:
            if spec.health_check is not None:
                healthy = self.health_check_healthy()
                rows.append(("health_check", spec.health_check, "healthy" if healthy else "unhealthy", float(healthy)))

        def dns() -> None:
            if spec.dns is not None:
                rows.append(("dns_answer", spec.dns.name, ",".join(self.dns_answer()["answer"]), None))

        for name, read in (("db_writer", writer), ("replica_lag", lag), ("instances", instances),
                           ("health_check", health), ("dns_answer", dns)):  # fmt: skip
            try:
                read()
            except Exception as err:  # noqa: BLE001  (each reading alone: one failing leaves a gap in it only)
                failed.append(f"{name}: {err}")
        return rows, failed
