"""The aws kind's fields in drill.yaml: the account and region allowlists and what a drill acts on.

Every field is checked at once (``extra="forbid"``: a misspelt field is an error, not a default).
``endpoint_url`` exists for a local emulator (moto's server) only: it must be a loopback URL, and
there is no default, so a drill never talks to anything but AWS unless told to.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AwsRegions", "AwsSpec", "DnsRecord", "is_loopback_url"]

ACCOUNT = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
HEALTH_CHECK = re.compile(r"^[0-9a-f-]{8,64}$")


def is_loopback_url(url: str) -> bool:
    """http(s)://localhost|127.x|[::1][:port]/...: an emulator on this machine, nothing else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsRegions(_Strict):
    """The regions a drill may act in: the primary (the writer, the health-checked front door) and
    the secondary it fails over to. Nothing outside these two is touched."""

    primary: str
    secondary: str | None = None

    @field_validator("primary", "secondary")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION.match(value):
            raise ValueError("an AWS region name such as eu-west-1")
        return value

    @model_validator(mode="after")
    def _different(self) -> AwsRegions:
        if self.secondary == self.primary:
            raise ValueError("secondary: must differ from primary (a second region)")
        return self

    def allowed(self) -> tuple[str, ...]:
        return (self.primary,) if self.secondary is None else (self.primary, self.secondary)


class DnsRecord(_Strict):
    """The failover record the service's name resolves through (Route 53), read for the DNS answer."""

    zone_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: Literal["A", "AAAA", "CNAME"] = "A"


class AwsSpec(_Strict):
    accounts: list[str] = Field(min_length=1)  # the only AWS account IDs drillbit may act in (STS checks it)
    regions: AwsRegions  # the only regions
    api_url: str = Field(min_length=1)  # the service's public URL (the probes and the load go there)
    app_tier: dict[str, str] = Field(min_length=1)  # EC2 tags of the application tier's instances
    db_cluster: str | None = Field(default=None, min_length=1)  # the Aurora cluster in the primary region
    secondary_db_cluster: str | None = Field(default=None, min_length=1)  # its global database's secondary
    global_cluster: str | None = Field(default=None, min_length=1)  # the Aurora global database
    health_check: str | None = None  # the primary region's Route 53 health check (failover record)
    dns: DnsRecord | None = None
    az_loss: Literal["stop-instances", "isolate-subnets"] = "stop-instances"
    alarms: list[str] = Field(default_factory=list)  # CloudWatch alarms (primary region): stop conditions
    lag_metric: Literal["AuroraReplicaLag", "ReplicaLag", "AuroraGlobalDBReplicationLag"] = "AuroraReplicaLag"
    alarm_poll_s: float = Field(default=5.0, gt=0, le=60)
    sample_interval_s: float = Field(default=5.0, gt=0, le=300)
    endpoint_url: str | None = None  # a local emulator (moto) only: loopback
    profile: str | None = Field(default=None, min_length=1)  # the AWS profile (shared config/credentials)

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: list[str]) -> list[str]:
        bad = [str(n) for n, a in enumerate(value) if not ACCOUNT.match(a)]
        if bad:  # by position: a value pasted here by mistake (an access key) is never echoed
            raise ValueError(f"12-digit AWS account IDs, quoted in YAML (entry {', '.join(bad)} is not)")
        return value

    @field_validator("health_check")
    @classmethod
    def _health_check(cls, value: str | None) -> str | None:
        if value is not None and not HEALTH_CHECK.match(value):
            raise ValueError("a Route 53 health check ID (hex and dashes)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is not None and not is_loopback_url(value):
            raise ValueError("for a local emulator only: a loopback URL (http://127.0.0.1:PORT); remove it for AWS")
        return value

    @field_validator("alarms")
    @classmethod
    def _alarms(cls, value: list[str]) -> list[str]:
        if any(not a.strip() for a in value) or len(set(value)) != len(value):
            raise ValueError("distinct, non-empty CloudWatch alarm names")
        return value

    @model_validator(mode="after")
    def _global(self) -> AwsSpec:
        if self.global_cluster is not None and (self.regions.secondary is None or self.secondary_db_cluster is None):
            raise ValueError("global_cluster: needs regions.secondary and secondary_db_cluster (the failover target)")
        return self
