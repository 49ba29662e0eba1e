"""The identity check: the credentials in use belong to an allowed account, before anything is touched.

``sts get-caller-identity`` is the only call made; an account outside drill.yaml's ``accounts``
is refused (exit 4, as AWS FIS refuses a role in the wrong account): the credentials point at an
environment the drill must not touch. The regions were checked when drill.yaml was read (every
client the target makes is confined to ``regions``).
"""

from __future__ import annotations

import logging

from drillbit.core.errors import EXIT_ENVIRONMENT, ConfigError
from drillbit.targets.aws.client import Aws
from drillbit.targets.aws.spec import AwsSpec

__all__ = ["WrongAccount", "check_account"]

log = logging.getLogger(__name__)


class WrongAccount(ConfigError):
    """The credentials belong to an account drill.yaml does not allow (exit 4: the environment is wrong)."""

    exit_code = EXIT_ENVIRONMENT


def check_account(name: str, spec: AwsSpec, source: str, aws: Aws | None = None) -> str:
    """The account ID the credentials belong to; WrongAccount when it is not in ``accounts``."""
    aws = aws or Aws(spec)
    account = str(aws.call("sts", "get_caller_identity").get("Account", ""))
    if account not in spec.accounts:
        how = f"profile {spec.profile!r}" if spec.profile else "the default credentials (environment or profile)"
        raise WrongAccount(source, f"targets.{name}.accounts: {how} belong to AWS account {account or '?'}, not "
                                   f"one of {', '.join(spec.accounts)}: use credentials of an allowed account or fix "
                                   "drill.yaml")  # fmt: skip
    log.info("aws target %s: account %s allowed", name, account)
    return account
