"""The aws kind's drill.yaml fields, and the README's IAM policy against what the driver calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore import xform_name

from drillbit.core.errors import ConfigError
from drillbit.targets import load_targets
from drillbit.targets.aws import AwsSpec

ROOT = Path(__file__).resolve().parents[2]
DRIVER = [ROOT / "drillbit" / "targets" / "aws" / f for f in ("driver.py", "identity.py")]

GOOD = {"accounts": ["123456789012"], "regions": {"primary": "eu-west-1", "secondary": "eu-central-1"},
        "api_url": "https://api.staging.example.com", "app_tier": {"app": "trading-api"}}  # fmt: skip


def _targets(tmp_path: Path, **fields: object) -> Path:
    config = tmp_path / "drill.yaml"
    config.write_text(yaml.safe_dump({"targets": {"staging-aws": {"kind": "aws", **GOOD, **fields}}}))
    return config


def test_a_valid_target_loads(tmp_path: Path) -> None:
    _, targets = load_targets(_targets(tmp_path, alarms=["api-5xx"], endpoint_url="http://127.0.0.1:5000"))
    spec = targets["staging-aws"].spec
    assert isinstance(spec, AwsSpec) and spec.regions.allowed() == ("eu-west-1", "eu-central-1")


def test_every_problem_is_reported_at_once_in_one_line(tmp_path: Path) -> None:
    config = _targets(tmp_path, accounts=["12345"], regions={"primary": "mars-1"}, endpoint_url="https://aws.example.com",
                      colour="blue", global_cluster="g")  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_targets(config)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(config))
    for field in ("targets.staging-aws.accounts", "regions.primary", "targets.staging-aws.endpoint_url",
                  "targets.staging-aws.colour: unknown field"):  # fmt: skip
        assert field in text, text
    assert "loopback" in text and "12-digit" in text


def test_endpoint_url_has_no_default_and_only_loopback_is_taken() -> None:
    assert AwsSpec.model_validate(GOOD).endpoint_url is None
    for url in ("http://localhost:5000", "http://[::1]:5000", "http://127.0.0.2:1"):
        assert AwsSpec.model_validate({**GOOD, "endpoint_url": url}).endpoint_url == url
    with pytest.raises(ValueError, match="loopback"):
        AwsSpec.model_validate({**GOOD, "endpoint_url": "http://10.0.0.1:5000"})


def test_a_global_failover_needs_the_secondary(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secondary_db_cluster"):
        load_targets(_targets(tmp_path, regions={"primary": "eu-west-1"}, global_cluster="trading-global"))


# -- the IAM policy in the README lists exactly what the driver calls ---------------------------

#: the chaosaws actions the driver calls, and the AWS operations each makes
CHAOSAWS = {"failover_db_cluster": {"rds:FailoverDBCluster"},
            "stop_instances": {"ec2:DescribeInstances", "ec2:StopInstances"},
            "start_instances": {"ec2:StartInstances"}}  # fmt: skip
#: permissions an operation needs besides its own (a network ACL created with tags)
IMPLIED = {"ec2:CreateNetworkAcl": {"ec2:CreateTags"}}


def _driver_actions() -> set[str]:
    models = botocore.session.get_session()
    actions: set[str] = set()
    for path in DRIVER:
        source = path.read_text()
        for service, op in re.findall(r'aws\.call\(\s*"(\w+)",\s*"(\w+)"', source):
            names = {xform_name(n): n for n in models.get_service_model(service).operation_names}
            actions.add(f"{service}:{names[op]}")
        for fn in re.findall(r"self\._chaosaws\((\w+)", source):
            actions |= CHAOSAWS[fn]
    for action in list(actions):
        actions |= IMPLIED.get(action, set())
    return actions


def _readme_policy() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Drilling AWS staging", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "the README's AWS section has no IAM policy (a ```json block)"
    policy = json.loads(block.group(1))
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_the_readme_iam_policy_lists_exactly_the_actions_the_driver_calls() -> None:
    called = _driver_actions()
    assert len(called) > 15 and "sts:GetCallerIdentity" in called
    assert _readme_policy() == called
