"""The aws kind (entry point ``aws``): an AWS account drillbit drills and never creates or deletes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drillbit.core.errors import EnvironmentFailure
from drillbit.targets.aws.driver import AwsTarget
from drillbit.targets.aws.identity import check_account
from drillbit.targets.aws.spec import AwsSpec
from drillbit.targets.base import Target

__all__ = ["AwsKind"]

log = logging.getLogger(__name__)


class AwsKind:
    name = "aws"
    spec_model = AwsSpec

    def check_identity(self, name: str, spec: AwsSpec, source: str) -> None:
        check_account(name, spec, source)

    def attach(self, name: str, spec: AwsSpec, state_dir: Path | str | None) -> Target:
        return AwsTarget(name, spec, state_dir)

    def is_up(self, name: str, spec: AwsSpec, state_dir: Path | str | None) -> bool:
        return AwsTarget(name, spec, state_dir).whole()

    def up(self, name: str, spec: AwsSpec, state_dir: Path | str | None, report: Callable[[str], None]) -> Target:
        target = AwsTarget(name, spec, state_dir)
        report(f"{name}: an AWS environment is not brought up by drillbit (Terraform does); checking it is whole")
        if not target.whole():
            raise EnvironmentFailure(f"{name}: the AWS environment is not whole (an application-tier instance not "
                                     "running, the health check forced, no database writer, or a fault drillbit left: "
                                     "drill env down undoes those): check it")  # fmt: skip
        return target

    def down(self, name: str, spec: AwsSpec, state_dir: Path | str | None, report: Callable[[str], None]) -> None:
        report(f"{name}: an AWS environment is not taken down by drillbit; undoing any fault drillbit left")
        AwsTarget(name, spec, state_dir).heal()

    def status(self, name: str, spec: AwsSpec, state_dir: Path | str | None) -> dict[str, Any]:
        target = AwsTarget(name, spec, state_dir)
        return {"up": target.whole(), "regions": list(spec.regions.allowed()), "replicas": target.replicas(),
                "writer": target.writer(), "primary": target.primary_region(),
                "left_by_drillbit": list(target.pending())}  # fmt: skip
