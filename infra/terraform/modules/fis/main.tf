# AWS Fault Injection Service: the role FIS assumes, with AWS's managed FIS policies for the services
# the drills touch, and (optionally) experiment templates equivalent to drillbit's AWS experiments,
# stopped by the SLO alarms. A team that injects through FIS runs `drill observe` beside it to
# measure RTO/RPO and judge the SLAs.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["fis.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "fis" {
  name_prefix        = "${substr(var.name, 0, 24)}-fis-"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "fis" {
  for_each = toset([
    "AWSFaultInjectionSimulatorRDSAccess",
    "AWSFaultInjectionSimulatorEKSAccess",
    "AWSFaultInjectionSimulatorEC2Access",
  ])

  role       = aws_iam_role.fis.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/${each.key}"
}

resource "aws_fis_experiment_template" "db_failover" {
  count = var.create_experiment_templates ? 1 : 0

  description = "${var.name}: fail the Aurora cluster over to a reader"
  role_arn    = aws_iam_role.fis.arn

  action {
    name      = "failover"
    action_id = "aws:rds:failover-db-cluster"

    target {
      key   = "Clusters"
      value = "cluster"
    }
  }

  target {
    name           = "cluster"
    resource_type  = "aws:rds:cluster"
    resource_arns  = [var.db_cluster_arn]
    selection_mode = "ALL"
  }

  dynamic "stop_condition" {
    for_each = var.stop_condition_alarm_arns

    content {
      source = "aws:cloudwatch:alarm"
      value  = stop_condition.value
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-db-failover" })
}

resource "aws_fis_experiment_template" "az_loss" {
  count = var.create_experiment_templates ? 1 : 0

  description = "${var.name}: terminate every node of the ${var.az_loss_zone} node group"
  role_arn    = aws_iam_role.fis.arn

  action {
    name      = "terminate-az-nodes"
    action_id = "aws:eks:terminate-nodegroup-instances"

    parameter {
      key   = "instanceTerminationPercentage"
      value = "100"
    }

    target {
      key   = "Nodegroups"
      value = "nodegroup"
    }
  }

  target {
    name           = "nodegroup"
    resource_type  = "aws:eks:nodegroup"
    resource_arns  = [var.node_group_arns[var.az_loss_zone]]
    selection_mode = "ALL"
  }

  dynamic "stop_condition" {
    for_each = var.stop_condition_alarm_arns

    content {
      source = "aws:cloudwatch:alarm"
      value  = stop_condition.value
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-az-loss" })
}
