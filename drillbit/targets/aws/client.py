"""boto3 clients for exactly one aws target: its profile, its regions, its endpoint (moto only).

Every call goes through :meth:`Aws.call`, which counts it and turns botocore's errors into
drillbit's (``AwsApiError``: the service refused, with its error code; ``EnvironmentFailure``: it
could not be reached), so a message names the operation and never the credentials.
:meth:`Aws.scope` points chaosaws (which builds its own clients from ``aws_region`` and the
environment) at the same account, region and endpoint while one of its actions runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from drillbit.core.errors import ConfigError, EnvironmentFailure
from drillbit.targets.aws.spec import AwsSpec

if TYPE_CHECKING:
    import boto3

__all__ = ["Aws", "AwsApiError"]

log = logging.getLogger(__name__)

class AwsApiError(EnvironmentFailure):
    """An AWS API answered with an error (``code``: e.g. AccessDenied, DBClusterNotFoundFault)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Aws:
    """Clients of one target (per service and region), created on first use; thread-safe."""

    def __init__(self, spec: AwsSpec) -> None:
        self.spec = spec
        self.calls = 0  # every API call made, STS included
        self.operations: list[str] = []  # service:Operation, in order (the record of what was called)
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def _boto(self) -> boto3.Session:
        import boto3
        from botocore.exceptions import ProfileNotFound

        if self._session is None:
            try:
                self._session = boto3.Session(profile_name=self.spec.profile)
            except ProfileNotFound:
                raise ConfigError("drill.yaml", f"profile: AWS profile {self.spec.profile!r} is not configured: "
                                                "run aws configure --profile or fix the field") from None  # fmt: skip
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        from botocore.config import Config

        region = region or self.spec.regions.primary
        if region not in self.spec.regions.allowed():
            allowed = ", ".join(self.spec.regions.allowed())
            raise ConfigError("drill.yaml", f"regions: {region!r} is not one of this target's regions ({allowed}): "
                                            "add it or drill another")  # fmt: skip
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
                self._clients[key] = self._boto().client(
                    service, region_name=region, endpoint_url=self.spec.endpoint_url, config=config)  # fmt: skip
            return self._clients[key]

    def call(self, service: str, operation: str, region: str | None = None, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(service, region)
        with self._lock:
            self.calls += 1
            self.operations.append(f"{service}:{operation}")
        try:
            result: dict[str, Any] = getattr(client, operation)(**kwargs)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", "Unknown"))
            message = err.response.get("Error", {}).get("Message", "")
            raise AwsApiError(f"aws {service}.{operation} ({region or self.spec.regions.primary}): {code}: "
                              f"{message}", code) from None  # fmt: skip
        except BotoCoreError as err:
            raise EnvironmentFailure(f"aws {service}.{operation}: {type(err).__name__}: {err}") from None
        return result

    def chaos_configuration(self, region: str | None = None) -> dict[str, Any]:
        """The ``configuration`` a chaosaws action takes: this target's region and profile."""
        region = region or self.spec.regions.primary
        self.client("sts", region)  # refuses a region outside the allowlist
        return {"aws_region": region, **({"aws_profile_name": self.spec.profile} if self.spec.profile else {})}

    @contextlib.contextmanager
    def scope(self, region: str | None = None) -> Iterator[None]:
        """The process environment chaosaws (and plain chaosaws activities) read, pointed at this target."""
        region = region or self.spec.regions.primary
        env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_ENDPOINT_URL": self.spec.endpoint_url,
               "AWS_PROFILE": self.spec.profile}  # fmt: skip
        before = {k: os.environ.get(k) for k in env}
        try:
            _set_env(env)
            yield
        finally:
            _set_env(before)


def _set_env(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
