"""The aws target kind: an AWS staging environment (Aurora, EC2, Route 53, CloudWatch) as a drill target.

``spec`` (drill.yaml's fields), ``identity`` (the account allowlist, checked through STS before
anything is touched), ``client`` (boto3 clients confined to the target's regions), ``driver`` (the
faults, through chaostoolkit-aws and boto3, each read back), ``marks`` (what a drill changed, kept
so a later process heals it; the samplers and the CloudWatch-alarm stop conditions are
``drillbit.probes.aws``), ``kind`` (the plugin registered as ``aws``).
"""

from __future__ import annotations

from drillbit.targets.aws.driver import AwsTarget
from drillbit.targets.aws.identity import WrongAccount, check_account
from drillbit.targets.aws.kind import AwsKind
from drillbit.targets.aws.spec import AwsSpec

__all__ = ["AwsKind", "AwsSpec", "AwsTarget", "WrongAccount", "check_account"]
