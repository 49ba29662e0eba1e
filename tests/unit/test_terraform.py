"""infra/terraform, checked offline: the shipped tree is formatted, passes checkov (with its baseline)
and every drillbit rule; each rule names the object of a small broken tree written here; a check that
cannot run, or input that does not parse, is never a clean result."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from drillbit.core.errors import ConfigError
from drillbit.manifests.check import find_checkov
from drillbit.manifests.terraform import (
    BASELINE_NAME,
    REQUIRED_OUTPUTS,
    RULES,
    check_terraform,
    load_tree,
    main,
    run_checkov,
    run_fmt,
    run_rules,
)

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
# the alarms envs/staging makes (modules/alarms, once per region)
STAGING_ALARMS = [
    f"trading-staging-{region}-{slo}"
    for region in ("eu-west-1", "eu-central-1")
    for slo in ("api-error-ratio", "api-latency-p99", "db-replication-lag", "slo")
]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "tf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.strip() + "\n", encoding="utf-8")
    return tmp_path / "tf"


def _named(tmp_path: Path, files: dict[str, str], rule: str, alarms: tuple[str, ...] = ()) -> set[str]:
    """The objects ``rule`` names in the tree ``files``."""
    return {f.object for f in run_rules(load_tree(_tree(tmp_path, files)), alarms) if f.rule == rule}


# --- the shipped tree ---------------------------------------------------------------------------------


def test_the_shipped_tree_passes_every_rule() -> None:
    tree = load_tree(TF)
    assert [m.display for m in tree.roots()] == ["infra/terraform/envs/staging", "infra/terraform/sandbox"]
    assert {p.name for p in tree.modules} >= {"network", "eks", "database", "dns", "alarms", "fis", "staging"}
    assert run_rules(tree, STAGING_ALARMS) == []


def test_the_shipped_tree_is_terraform_fmt_clean() -> None:
    assert shutil.which("terraform"), "terraform is not on PATH: the fmt check cannot run"
    assert run_fmt(TF) == []


def test_the_staging_root_outputs_what_the_targets_read_and_pins_its_providers() -> None:
    staging = load_tree(TF).roots()[0]
    assert {b.name for b in staging.of("output")} >= set(REQUIRED_OUTPUTS)
    text = (TF / "envs" / "staging" / "versions.tf").read_text(encoding="utf-8")
    assert 'version = "~> 5.80"' in text and 'required_version = ">= 1.6, < 2.0"' in text
    every = "".join(p.read_text(encoding="utf-8") for p in TF.rglob("*.tf"))
    assert "iam::${data.aws_caller_identity.current.account_id}:root" in every
    assert re.findall(r"(?<![\w.])\d{12}(?![\w.])", every) == [], "a hard-coded account ID"


@pytest.fixture(scope="module")
def checkov() -> str:
    program = find_checkov(ROOT)
    if program is None:
        pytest.skip("checkov is not installed (.tools/checkov): `make lint` installs it; its checks are not run")
    return program


def test_checkov_passes_the_shipped_tree_offline_and_every_suppression_has_a_reason(checkov: str) -> None:
    findings, passed, version = run_checkov(load_tree(TF), checkov)
    assert version and passed > 300
    assert [f for f in findings if f.severity != "info"] == []
    suppressed = [f for f in findings if f.severity == "info"]
    assert suppressed and all("no reason" not in f.message and "No comment" not in f.message for f in suppressed)
    baseline = json.loads((TF / BASELINE_NAME).read_text(encoding="utf-8"))
    assert all(f.get("reason") for entry in baseline["failed_checks"] for f in entry["findings"])


# --- each rule, broken ------------------------------------------------------------------------------------


def test_every_rule_has_an_id_and_a_seed_requirement() -> None:
    assert [r.id for r in RULES] == [f"DRILL-TF-00{n}" for n in range(1, len(RULES) + 1)]
    assert all(r.requirement.startswith("R") and r.fix for r in RULES)


@pytest.mark.parametrize(
    ("tf", "named"),
    [
        ('resource "aws_subnet" "a" {\n  vpc_id = "vpc-1"\n  cidr_block = "10.0.0.0/24"\n'
         '  availability_zone = "eu-west-1a"\n}', "aws_subnet.a"),
        ('variable "azs" {\n  type = list(string)\n}\nresource "aws_subnet" "a" {\n  for_each = toset(var.azs)\n'
         '  vpc_id = "vpc-1"\n  cidr_block = "10.0.0.0/24"\n  availability_zone = each.key\n}', "aws_subnet.a"),
        ('resource "aws_subnet" "a" {\n  for_each = toset(["eu-west-1a"])\n  vpc_id = "vpc-1"\n'
         '  cidr_block = "10.0.0.0/24"\n  availability_zone = each.key\n}', "aws_subnet.a"),
        ('resource "aws_eks_node_group" "one" {\n  cluster_name = "c"\n  node_group_name = "n"\n'
         '  node_role_arn = "r"\n  subnet_ids = ["subnet-1"]\n}', "aws_eks_node_group.one"),
        ('resource "aws_rds_cluster_instance" "db" {\n  count = 1\n  cluster_identifier = "c"\n'
         '  instance_class = "db.r6g.large"\n}', "aws_rds_cluster_instance.db"),
        ('resource "aws_nat_gateway" "one" {\n  allocation_id = "e"\n  subnet_id = "subnet-1"\n}',
         "aws_nat_gateway.one"),
        ('module "net" {\n  source = "./net"\n  azs = ["eu-west-1a"]\n}', "module.net"),
    ],
    ids=["subnet-in-one-az", "azs-not-validated", "one-az-iterated", "node-group-one-subnet", "one-db-instance",
         "one-nat", "one-az-passed"],
)  # fmt: skip
def test_multi_az_names_what_sits_in_one_az(tmp_path: Path, tf: str, named: str) -> None:
    net = ('variable "azs" {\n  type = list(string)\n  validation {\n    condition = length(var.azs) >= 2\n'
           '    error_message = "two"\n  }\n}')  # fmt: skip
    assert named in _named(tmp_path, {"main.tf": tf, "net/variables.tf": net}, "DRILL-TF-001")


def test_multi_az_accepts_an_iteration_over_validated_azs(tmp_path: Path) -> None:
    tf = ('variable "azs" {\n  type = list(string)\n  validation {\n    condition = length(var.azs) >= 3\n'
          '    error_message = "three"\n  }\n}\nlocals {\n  idx = { for i, az in var.azs : az => i }\n}\n'
          'resource "aws_subnet" "a" {\n  for_each = local.idx\n  vpc_id = "v"\n  cidr_block = "10.0.0.0/24"\n'
          '  availability_zone = each.key\n}\nresource "aws_eks_node_group" "g" {\n  for_each = aws_subnet.a\n'
          '  cluster_name = "c"\n  node_group_name = each.key\n  node_role_arn = "r"\n'
          '  subnet_ids = [each.value.id]\n}')  # fmt: skip
    assert _named(tmp_path, {"main.tf": tf}, "DRILL-TF-001") == set()


@pytest.mark.parametrize(
    ("tf", "named"),
    [
        ('resource "aws_rds_cluster" "db" {\n  engine = "aurora-postgresql"\n}', "aws_rds_cluster.db"),
        ('resource "aws_rds_cluster" "db" {\n  backup_retention_period = 3\n}', "aws_rds_cluster.db"),
        ('variable "days" {\n  type = number\n}\nresource "aws_db_instance" "db" {\n'
         '  backup_retention_period = var.days\n}', "aws_db_instance.db"),
        ('module "db" {\n  source = "./db"\n  days = 3\n}', "module.db"),
    ],
    ids=["unset-defaults-to-1", "three-days", "unvalidated-variable", "caller-passes-3"],
)  # fmt: skip
def test_backup_retention_below_7_days_is_named(tmp_path: Path, tf: str, named: str) -> None:
    db = ('variable "days" {\n  type = number\n  validation {\n    condition = var.days >= 7\n'
          '    error_message = "a week"\n  }\n}\nresource "aws_rds_cluster" "ok" {\n'
          '  backup_retention_period = var.days\n}')  # fmt: skip
    found = _named(tmp_path, {"main.tf": tf, "db/main.tf": db}, "DRILL-TF-002")
    assert named in found and "aws_rds_cluster.ok" not in found


_TWO = ('provider "aws" {\n  alias = "primary"\n  region = "eu-west-1"\n}\n'
        'provider "aws" {\n  alias = "secondary"\n  region = "eu-central-1"\n}\n')  # fmt: skip


@pytest.mark.parametrize(
    ("tf", "named"),
    [
        ('provider "aws" {\n  region = "eu-west-1"\n}\nresource "aws_vpc" "v" {\n  cidr_block = "10.0.0.0/16"\n}',
         "tf"),
        ('provider "aws" {\n  alias = "a"\n  region = "eu-west-1"\n}\nprovider "aws" {\n  alias = "b"\n'
         '  region = "eu-west-1"\n}', "tf"),
        (_TWO + 'resource "aws_vpc" "v" {\n  provider = aws.primary\n  cidr_block = "10.0.0.0/16"\n}',
         "provider.aws.secondary"),
        (_TWO + 'resource "aws_rds_cluster" "a" {\n  provider = aws.primary\n}\n'
         'resource "aws_rds_cluster" "b" {\n  provider = aws.secondary\n}', "aws_rds_cluster.a"),
        (_TWO + 'resource "aws_rds_global_cluster" "g" {\n  provider = aws.primary\n}\n'
         'resource "aws_rds_cluster" "a" {\n  provider = aws.primary\n  global_cluster_identifier = "g"\n}\n'
         'resource "aws_rds_cluster" "b" {\n  provider = aws.secondary\n}', "aws_rds_cluster.a"),
        (_TWO + 'resource "aws_vpc" "v" {\n  provider = aws.primary\n}\n'
         'resource "aws_s3_bucket" "b" {\n  provider = aws.secondary\n}', "aws_vpc"),
        (_TWO + 'resource "aws_route53_record" "p" {\n  provider = aws.primary\n  health_check_id = "h"\n'
         '  failover_routing_policy {\n    type = "PRIMARY"\n  }\n}\nresource "aws_route53_record" "s" {\n'
         '  provider = aws.primary\n  failover_routing_policy {\n    type = "SECONDARY"\n  }\n}',
         "aws_route53_record.s"),
        (_TWO + 'resource "aws_route53_record" "api" {\n  provider = aws.primary\n  zone_id = "z"\n  name = "api"\n'
         '  type = "A"\n  health_check_id = "h"\n  failover_routing_policy {\n    type = "PRIMARY"\n  }\n}',
         "aws_route53_record.api"),
    ],
    ids=["one-provider", "two-providers-one-region", "second-region-empty", "databases-not-global",
         "secondary-not-joined", "vpc-in-one-region", "record-without-health-check", "primary-record-alone"],
)  # fmt: skip
def test_a_missing_second_region_is_named(tmp_path: Path, tf: str, named: str) -> None:
    found = _named(tmp_path, {"main.tf": tf}, "DRILL-TF-003")
    assert any(o == named or o.endswith(f"/{named}") for o in found), found


def test_a_root_that_deploys_nothing_to_aws_needs_no_second_aws_region(tmp_path: Path) -> None:
    tf = 'resource "terraform_data" "sandbox" {\n  input = "up"\n}'
    assert _named(tmp_path, {"main.tf": tf}, "DRILL-TF-003") == set()
    aws = tf + '\nresource "aws_vpc" "v" {\n  cidr_block = "10.0.0.0/16"\n}'  # on an implicit default provider
    assert _named(tmp_path, {"main.tf": aws}, "DRILL-TF-003") != set()


def test_an_alarm_an_experiment_names_must_exist(tmp_path: Path) -> None:
    tf = ('resource "aws_cloudwatch_metric_alarm" "p99" {\n  alarm_name = "${var.name}-api-latency-p99"\n}\n'
          'resource "aws_cloudwatch_composite_alarm" "slo" {\n  alarm_name = "${var.name}-slo"\n}')  # fmt: skip
    wanted = ("staging-eu-west-1-api-latency-p99", "staging-eu-west-1-slo", "staging-eu-west-1-api-availability")
    assert _named(tmp_path, {"main.tf": tf}, "DRILL-TF-004", wanted) == {"alarm staging-eu-west-1-api-availability"}


def test_a_root_without_the_targets_outputs_is_named(tmp_path: Path) -> None:
    tf = 'output "api_url" {\n  value = "https://api.example.com"\n}'
    found = _named(tmp_path, {"outputs.tf": tf}, "DRILL-TF-005")
    assert found == {f"output.{n}" for n in REQUIRED_OUTPUTS if n != "api_url"}


def test_a_checkov_skip_without_a_reason_is_named(tmp_path: Path) -> None:
    tf = ('resource "aws_s3_bucket" "b" {\n  #checkov:skip=CKV_AWS_18\n  #checkov:skip=CKV_AWS_21:versioned elsewhere\n'
          '  bucket = "b"\n}')  # fmt: skip
    baseline = json.dumps({"failed_checks": [{"file": "/main.tf", "findings": [
        {"resource": "aws_s3_bucket.b", "check_ids": ["CKV_AWS_144"]}]}]})  # fmt: skip
    found = _named(tmp_path, {"main.tf": tf, BASELINE_NAME: baseline}, "DRILL-TF-006")
    assert found == {"CKV_AWS_18", "aws_s3_bucket.b"}


# --- what cannot be checked is never clean ------------------------------------------------------------------


def test_hcl_that_does_not_parse_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = _tree(tmp_path, {"modules/x/main.tf": 'resource "aws_vpc" "v" {\n  cidr_block = \n'})
    with pytest.raises(ConfigError, match=r"modules/x/main\.tf.*not valid HCL"):
        load_tree(path)
    assert main([str(path), "--no-fmt", "--no-checkov"]) == 2


def test_main_exits_1_naming_the_rule_and_0_on_the_shipped_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _tree(tmp_path, {"main.tf": 'resource "aws_rds_cluster" "db" {\n  engine = "aurora-postgresql"\n}'})
    assert main([str(path), "--no-fmt", "--no-checkov"]) == 1
    assert "DRILL-TF-002" in capsys.readouterr().out
    assert main([str(TF), "--no-fmt", "--no-checkov", *(f"--alarm={a}" for a in STAGING_ALARMS)]) == 0
    assert main([str(TF), "--no-fmt", "--no-checkov", "--alarm", "trading-staging-eu-west-1-nope"]) == 1


def test_an_unformatted_file_is_a_fmt_finding_naming_it(tmp_path: Path) -> None:
    assert shutil.which("terraform"), "terraform is not on PATH: the fmt check cannot run"
    path = _tree(tmp_path, {"modules/x/main.tf": 'resource "aws_vpc" "v" {\ncidr_block    = "10.0.0.0/16"\n}'})
    assert [(f.rule, f.object) for f in run_fmt(path)] == [("TF-FMT", "main.tf")]


def test_without_terraform_or_checkov_the_check_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DRILL_TERRAFORM", raising=False)
    monkeypatch.delenv("DRILL_CHECKOV", raising=False)
    monkeypatch.chdir(tmp_path)
    result = check_terraform(TF, alarm_names=STAGING_ALARMS, project_root=tmp_path)
    assert {f.rule for f in result.findings if f.severity == "error"} == {"TF-FMT", "CHECKOV"}
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("summary", "message"),
    [({"passed": 0, "failed": 0, "resource_count": 0}, "found no resource"),
     ({"passed": 9, "failed": 0, "resource_count": 3, "parsing_errors": 1}, "could not parse 1 file")],
    ids=["read-nothing", "parse-error"],
)  # fmt: skip
def test_a_checkov_scan_that_read_nothing_or_failed_to_parse_is_an_error(tmp_path: Path, summary: dict[str, int],
                                                                        message: str) -> None:  # fmt: skip
    fake = tmp_path / "checkov"  # a stand-in program printing what checkov prints for such a scan
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(summary | {'checkov_version': '3.3.30'})}\nEOF\n")
    fake.chmod(0o755)
    findings, _, version = run_checkov(load_tree(TF), str(fake))
    assert version == "3.3.30"
    assert [(f.rule, f.severity) for f in findings if message in f.message] == [("CHECKOV", "error")]


def test_checkov_fails_a_broken_tree_and_its_baseline_accepts_only_what_it_names(checkov: str, tmp_path: Path) -> None:
    tf = ('resource "aws_rds_cluster" "db" {\n  cluster_identifier = "db"\n  engine = "aurora-postgresql"\n'
          '  storage_encrypted = false\n  backup_retention_period = 1\n}')  # fmt: skip
    accepted = {"resource": "aws_rds_cluster.db", "check_ids": ["CKV_AWS_96", "CKV_AWS_999"], "reason": "a test"}
    baseline = {"failed_checks": [{"file": "/main.tf", "findings": [accepted]}]}
    path = _tree(tmp_path, {"main.tf": tf, BASELINE_NAME: json.dumps(baseline)})
    findings, passed, _ = run_checkov(load_tree(path), checkov)
    by = {(f.rule, f.severity) for f in findings}
    assert ("CKV_AWS_96", "info") in by  # storage not encrypted: accepted, with its reason
    assert ("CKV_AWS_999", "warning") in by  # matches nothing: stale
    assert ("CKV_AWS_139", "error") in by  # deletion protection off: not in the baseline
    assert passed > 0
