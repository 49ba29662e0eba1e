"""The aws target against moto's server over real HTTP (``ThreadedMotoServer`` on loopback).

Every request the driver makes goes through a small recording proxy in front of moto (moto keeps
no request log of its own to trust), so a test can say exactly which operations reached "AWS".
Ground truth is read back through boto3 directly, never through the driver. moto has no
``FailoverGlobalCluster``: the fixture adds it to moto's RDS responses (it swaps the writer
member of the global cluster, as Aurora does), like the kmock subclass the Kubernetes tests use.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import httpx
import pytest
import yaml

from drillbit.core.events import read_events
from drillbit.core.results import RUN, RunInfo, RunStatus, read_model
from drillbit.plan import load_plan
from drillbit.runner import RunOptions, run_drill
from drillbit.targets.aws import AwsSpec, AwsTarget
from tests.quiet_servers import serve

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"  # moto's
APP = {"app": "trading-api"}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
               "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


# -- moto, the recording proxy, and the API stand-in ----------------------------------------------


def _add_failover_global_cluster() -> None:
    from moto.core.responses import ActionResult
    from moto.rds.models import rds_backends
    from moto.rds.responses import RDSResponse

    def failover_global_cluster(self: Any) -> Any:
        gid, target = self.params["GlobalClusterIdentifier"], self.params["TargetDbClusterIdentifier"]
        cluster = self.global_backend.global_clusters[gid]
        for member in cluster.members:
            member.is_writer = member.db_cluster_arn == target
        assert rds_backends is not None
        return ActionResult({"GlobalCluster": cluster})

    RDSResponse.failover_global_cluster = failover_global_cluster  # type: ignore[attr-defined]


class _Recorder(BaseHTTPRequestHandler):
    upstream = ""
    seen: list[str] = []

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        service = auth.split("Credential=")[1].split("/")[3] if "Credential=" in auth else "?"
        action = (parse_qs(body.decode(errors="replace")).get("Action") or [""])[0] or self.headers.get(
            "X-Amz-Target", "") or f"{self.command} {self.path.split('?')[0]}"
        type(self).seen.append(f"{service}:{action}")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.request(self.command, self.upstream + self.path, content=body, headers=headers, timeout=30)
        self.send_response(answer.status_code)
        for k, v in answer.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        return


class _Api(BaseHTTPRequestHandler):
    """The service under test, standing for the API behind the load balancer: always answers."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, data: object) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer(200, {"ok": True, "bids": [], "asks": []})

    def do_POST(self) -> None:
        self._answer(201, {"id": int(time.time_ns() % 10**9), "status": "open"})

    def do_DELETE(self) -> None:
        self._answer(200, {"status": "cancelled"})

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server, _ = serve(handler)  # quiet: it lives all session, beside other tests' output checks
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def aws() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    _add_failover_global_cluster()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    _Recorder.upstream = f"http://{host}:{port}"
    proxy, proxy_url = _serve(_Recorder)
    api, api_url = _serve(_Api)
    before = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield {"moto": _Recorder.upstream, "endpoint": proxy_url, "api": api_url}
    finally:
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        proxy.shutdown()
        api.shutdown()
        moto.stop()


@dataclass
class World:
    spec: AwsSpec
    config: Path
    state: Path
    endpoint: str
    instances: dict[str, list[str]]  # AZ -> instance ids
    subnets: dict[str, str]  # AZ -> subnet

    def client(self, service: str, region: str = PRIMARY) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint)

    def target(self, **changes: Any) -> AwsTarget:
        target = AwsTarget("staging-aws", self.spec.model_copy(update=changes), self.state)
        target.wait_timeout_s = 10
        return target

    def states(self, az: str) -> set[str]:
        found = self.client("ec2", az[:-1]).describe_instances(InstanceIds=self.instances[az])["Reservations"]
        return {i["State"]["Name"] for r in found for i in r["Instances"]}


def _build(endpoint: str, api_url: str, tmp: Path) -> World:
    def c(service: str, region: str = PRIMARY) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=endpoint)

    instances: dict[str, list[str]] = {}
    subnets: dict[str, str] = {}
    for region, azs in ((PRIMARY, ("us-east-1a", "us-east-1b")), (SECONDARY, ("us-west-2a",))):
        ec2 = c("ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        for n, az in enumerate(azs):
            made = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=az)
            subnets[az] = made["Subnet"]["SubnetId"]
            run = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, SubnetId=subnets[az],
                                    TagSpecifications=[{"ResourceType": "instance",
                                                        "Tags": [{"Key": "app", "Value": "trading-api"}]}])
            instances[az] = sorted(i["InstanceId"] for i in run["Instances"])
    rds = c("rds")
    rds.create_global_cluster(GlobalClusterIdentifier="trading-global", Engine="aurora-postgresql")
    rds.create_db_cluster(DBClusterIdentifier="trading-db", Engine="aurora-postgresql", MasterUsername="u",
                          MasterUserPassword="password123", GlobalClusterIdentifier="trading-global")
    for i in (1, 2):
        rds.create_db_instance(DBInstanceIdentifier=f"trading-db-{i}", DBClusterIdentifier="trading-db",
                               Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    c("rds", SECONDARY).create_db_cluster(DBClusterIdentifier="trading-db-west", Engine="aurora-postgresql",
                                          GlobalClusterIdentifier="trading-global")
    r53 = c("route53")
    check = r53.create_health_check(CallerReference=str(time.time_ns()), HealthCheckConfig={
        "Type": "HTTPS", "FullyQualifiedDomainName": "east.api.example.com", "Port": 443,
        "ResourcePath": "/readyz"})["HealthCheck"]["Id"]
    zone = r53.create_hosted_zone(Name="example.com", CallerReference=str(time.time_ns()))["HostedZone"]["Id"]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "east",
                                                   "Failover": "PRIMARY", "TTL": 30, "HealthCheckId": check,
                                                   "ResourceRecords": [{"Value": "10.0.0.10"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "api.example.com.", "Type": "A", "SetIdentifier": "west",
                                                   "Failover": "SECONDARY", "TTL": 30,
                                                   "ResourceRecords": [{"Value": "10.1.0.10"}]}}]})
    cw = c("cloudwatch")
    cw.put_metric_alarm(AlarmName="trading-api-5xx", MetricName="5xx", Namespace="Trading", Statistic="Sum",
                        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName="trading-api-5xx", StateValue="OK", StateReason="quiet")
    cw.put_metric_data(Namespace="AWS/RDS", MetricData=[{"MetricName": "AuroraReplicaLag", "Value": 12.0,
                                                          "Dimensions": [{"Name": "DBClusterIdentifier",
                                                                          "Value": "trading-db"}]}])
    fields: dict[str, Any] = {
        "accounts": [ACCOUNT], "regions": {"primary": PRIMARY, "secondary": SECONDARY}, "api_url": api_url,
        "app_tier": APP, "db_cluster": "trading-db", "secondary_db_cluster": "trading-db-west",
        "global_cluster": "trading-global", "health_check": check,
        "dns": {"zone_id": zone.split("/")[-1], "name": "api.example.com"}, "alarms": ["trading-api-5xx"],
        "alarm_poll_s": 0.5, "sample_interval_s": 1.0, "endpoint_url": endpoint}
    config = tmp / "drill.yaml"
    config.write_text(yaml.safe_dump({"targets": {"staging-aws": {"kind": "aws", **fields}}}))
    return World(AwsSpec.model_validate(fields), config, tmp / "state", endpoint, instances, subnets)


@pytest.fixture
def world(aws: dict[str, str], tmp_path: Path) -> World:
    httpx.post(f"{aws['moto']}/moto-api/reset")
    built = _build(aws["endpoint"], aws["api"], tmp_path)
    _Recorder.seen.clear()
    return built


# -- each fault lands, and its rollback restores ---------------------------------------------


def test_an_aurora_failover_lands_when_the_writer_changed(world: World) -> None:
    def writer() -> str:
        members = world.client("rds").describe_db_clusters(DBClusterIdentifier="trading-db")["DBClusters"][0]
        return next(m["DBInstanceIdentifier"] for m in members["DBClusterMembers"] if m["IsClusterWriter"])

    before = writer()
    out = world.target().fail_over_database("failover")
    assert out["landed"] is True and out["old_writer"] == before and out["new_writer"] == writer() != before
    assert any(s.startswith("rds:FailoverDBCluster") for s in _Recorder.seen)


def test_a_global_failover_lands_when_the_secondary_writes(world: World) -> None:
    out = world.target().fail_over_database("global")
    members = world.client("rds").describe_global_clusters(GlobalClusterIdentifier="trading-global")[
        "GlobalClusters"][0]["GlobalClusterMembers"]
    writer = next(m["DBClusterArn"] for m in members if m["IsWriter"])
    assert out["landed"] is True and writer.endswith(":cluster:trading-db-west") and out["new_writer"] == writer


def test_an_az_loss_stops_its_instances_and_the_rollback_starts_them(world: World) -> None:
    target = world.target()
    out = target.lose_region("us-east-1a")
    assert out["landed"] is True and sorted(out["stopped"]) == world.instances["us-east-1a"]
    assert world.states("us-east-1a") == {"stopped"} and world.states("us-east-1b") == {"running"}
    assert not target.whole()
    back = target.restore_region("us-east-1a")
    assert back["landed"] is True and world.states("us-east-1a") == {"running"}
    assert not target.marks.path.exists() and target.whole()


def test_an_isolated_az_is_healed_by_a_later_process_from_the_marks(world: World) -> None:
    ec2 = world.client("ec2")

    def acl_of(subnet: str) -> str:
        found = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
        return str(found["NetworkAcls"][0]["NetworkAclId"])

    subnet = world.subnets["us-east-1b"]
    original = acl_of(subnet)
    out = world.target(az_loss="isolate-subnets").lose_region("us-east-1b")
    assert out["landed"] is True and out["isolated_subnets"] == [subnet]
    deny = acl_of(subnet)
    assert deny != original and deny in out["deny_acls"]
    assert acl_of(world.subnets["us-east-1a"]) != deny  # the other AZ untouched
    healed = world.target().heal()  # a new target object: it knows only what the state dir says
    assert healed["whole"] is True and healed["restored"] == [f"subnet/{subnet}"]
    assert acl_of(subnet) == original
    assert deny not in {a["NetworkAclId"] for a in ec2.describe_network_acls()["NetworkAcls"]}


def test_a_region_loss_forces_the_health_check_stops_the_tier_and_moves_the_dns_answer(world: World) -> None:
    target = world.target()
    r53 = world.client("route53")
    out = target.lose_region(PRIMARY)
    config = r53.get_health_check(HealthCheckId=world.spec.health_check)["HealthCheck"]["HealthCheckConfig"]
    assert out["landed"] is True and config["Disabled"] is True and config["Inverted"] is True
    assert world.states("us-east-1a") == world.states("us-east-1b") == {"stopped"}
    assert world.states("us-west-2a") == {"running"}
    assert out["dns_answer"]["answer"] == ["10.1.0.10"]  # the SECONDARY failover record
    back = target.restore_region(PRIMARY)
    config = r53.get_health_check(HealthCheckId=world.spec.health_check)["HealthCheck"]["HealthCheckConfig"]
    assert back["landed"] is True and not config.get("Disabled") and not config.get("Inverted")
    assert world.states("us-east-1a") == world.states("us-east-1b") == {"running"}
    assert target.dns_answer()["answer"] == ["10.0.0.10"]


def test_a_region_outside_the_allowlist_is_refused_before_any_call(world: World) -> None:
    from drillbit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="'eu-central-1' is neither"):
        world.target().lose_region("eu-central-1")
    assert _Recorder.seen == []


def test_the_samplers_read_writer_lag_instances_health_and_dns(world: World) -> None:
    rows, failed = world.target().readings()
    assert failed == []
    by = {(s, k): (v, n) for s, k, v, n in rows}
    assert by[("db_writer", "trading-db")][0] == "trading-db-1"
    assert by[("replica_lag", "trading-db")][1] == 12.0
    assert by[("instances", "us-east-1a")] == ("2/2 running", 2.0)
    assert by[("health_check", world.spec.health_check)][0] == "healthy"
    assert by[("dns_answer", "api.example.com")][0] == "10.0.0.10"


# -- whole drills ---------------------------------------------------------------------------------


#: the drills are judged on RTO alone here (the shipped SLA file is the other tests' concern)
SLAS = """slas:
  rto: {metric: rto_s, op: "<", target: 900, requirement: R9.4, text: "RTO < 15 min"}
default: [rto]
"""


def _drill(world: World, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Any:
    monkeypatch.setenv("DRILL_CONFIG", str(world.config))
    monkeypatch.setenv("DRILL_TARGET", "staging-aws")
    monkeypatch.setenv("DRILL_STATE_DIR", str(world.state))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "slas.yaml").write_text(SLAS)
    plan = load_plan(EXPERIMENTS / f"{name}.yaml", sla_path=tmp_path / "slas.yaml")
    settings = {"baseline_s": 2.0, "cooldown_s": 2.0, "stability_s": 2.0, "max_recovery_s": 30.0}
    plan = dataclasses.replace(plan, settings=plan.settings.model_copy(update=settings))
    return run_drill(plan, RunOptions(env="staging-aws", out=tmp_path / "runs", state_dir=world.state, tty=False))


@pytest.mark.timeout(120)
def test_an_az_loss_drill_lands_its_fault_and_leaves_the_environment_whole(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = _drill(world, "aws-az-loss", monkeypatch, tmp_path, AWS_DRILL_ZONE="us-east-1a")
    events = read_events(result.run_dir / "events.jsonl")
    (fault,) = [e for e in events if e.get("kind") == "fault.result" and e.get("role") == "fault"]
    (revert,) = [e for e in events if e.get("kind") == "fault.result" and e.get("role") == "revert"]
    assert fault["landed"] is True and sorted(fault["output"]["stopped"]) == world.instances["us-east-1a"]
    assert revert["landed"] is True and result.status is RunStatus.COMPLETED
    assert world.states("us-east-1a") == {"running"}  # ground truth, after the drill
    samples = result.run_dir / "samples"
    assert (samples / "aws.parquet").exists() and (samples / "alarms.parquet").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("experiment", "writer_after"), [("aws-db-failover", "trading-db-2"),
                                                          ("aws-global-db-failover", ":cluster:trading-db-west")])
def test_each_database_failover_drill_lands_its_fault_and_passes(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, experiment: str, writer_after: str
) -> None:
    result = _drill(world, experiment, monkeypatch, tmp_path)
    events = read_events(result.run_dir / "events.jsonl")
    (fault,) = [e for e in events if e.get("kind") == "fault.result" and e.get("role") == "fault"]
    assert fault["landed"] is True and result.status is RunStatus.COMPLETED, fault
    # PASS; or, on a machine so busy that the availability probe left gaps around the fault, the RTO
    # is INCONCLUSIVE for that reason, as it must be (never a FAIL of a failover that landed)
    doubts = [v.reason or "" for v in result.verdicts.verdicts if v.verdict.value != "PASS"]
    assert result.exit_code == 0 or (result.exit_code == 3 and doubts and all("gap" in d for d in doubts)), doubts
    assert str(fault["output"]["new_writer"]).endswith(writer_after), fault
    rds = world.client("rds")  # ground truth, after the drill: the writer moved, and stays (no failback)
    if experiment == "aws-db-failover":
        members = rds.describe_db_clusters(DBClusterIdentifier="trading-db")["DBClusters"][0]["DBClusterMembers"]
        assert next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]) == writer_after
    else:
        members = rds.describe_global_clusters(GlobalClusterIdentifier="trading-global")["GlobalClusters"][0][
            "GlobalClusterMembers"]
        assert next(m["DBClusterArn"] for m in members if m["IsWriter"]).endswith(writer_after)


@pytest.mark.timeout(120)
def test_an_alarm_going_to_alarm_mid_drill_stops_it_with_exit_3(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"

    def trip_the_alarm_once_the_fault_landed() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for events in runs.glob("*/events.jsonl"):
                if any(e.get("kind") == "fault.result" for e in read_events(events)):
                    world.client("cloudwatch").set_alarm_state(AlarmName="trading-api-5xx", StateValue="ALARM",
                                                                StateReason="5xx above 1 % (test)")
                    return
            time.sleep(0.1)

    threading.Thread(target=trip_the_alarm_once_the_fault_landed, daemon=True).start()
    result = _drill(world, "aws-region-failover", monkeypatch, tmp_path, AWS_DRILL_PRIMARY_REGION=PRIMARY)
    assert result.exit_code == 3 and result.status is RunStatus.STOPPED
    events = read_events(result.run_dir / "events.jsonl")
    (fired,) = [e for e in events if e.get("kind") == "stop_condition"]
    assert fired["alarm"] == "trading-api-5xx" and fired["reason"] == "5xx above 1 % (test)"
    assert any(e.get("kind") == "signal" for e in events) and any(e.get("kind") == "rollbacks.start" for e in events)
    info = read_model(result.run_dir / RUN, RunInfo)
    assert info.status is RunStatus.STOPPED and any("trading-api-5xx" in n for n in info.notes)
    assert "trading-api-5xx" in (result.run_dir / "report.html").read_text()
    for p in result.run_dir.rglob("*"):  # the credentials reach no file of the run (journal, logs, report)
        assert p.is_dir() or not any(v.encode() in p.read_bytes() for v in CREDENTIALS.values()), p
    # rolled back and healed: ground truth
    config = world.client("route53").get_health_check(HealthCheckId=world.spec.health_check)["HealthCheck"]
    assert not config["HealthCheckConfig"].get("Inverted") and world.states("us-east-1a") == {"running"}


@pytest.mark.timeout(90)
def test_a_wrong_account_exits_4_with_no_call_but_sts(world: World, tmp_path: Path) -> None:
    data = yaml.safe_load(world.config.read_text())
    data["targets"]["staging-aws"]["accounts"] = ["111111111111"]
    world.config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "DRILL_CONFIG": str(world.config), "DRILL_TARGET": "staging-aws"}
    proc = subprocess.run([sys.executable, "-m", "drillbit.cli", "run", str(EXPERIMENTS / "aws-db-failover.yaml"),
                           "--env", "staging-aws", "--state-dir", str(world.state), "--out", str(tmp_path / "runs"),
                           "--plain"], capture_output=True, text=True, timeout=80, env=env)  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "account 123456789012, not one of 111111111111" in proc.stderr
    assert _Recorder.seen and set(_Recorder.seen) == {"sts:GetCallerIdentity"}, _Recorder.seen
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
