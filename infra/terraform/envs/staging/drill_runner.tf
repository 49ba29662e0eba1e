# What the drill runner's AWS identity may do (IRSA role in both clusters): exactly the AWS target's
# faults (Aurora failover, AZ loss by stopping the AZ's nodes or isolating its subnets, a region's
# health check forced unhealthy), its samplers and its stop conditions. Nothing else.

data "aws_partition" "current" {
  provider = aws.primary
}

data "aws_caller_identity" "current" {
  provider = aws.primary
}

data "aws_iam_policy_document" "drill_runner" {
  provider = aws.primary

  statement {
    sid     = "DatabaseFailover"
    actions = ["rds:FailoverDBCluster", "rds:FailoverGlobalCluster", "rds:SwitchoverGlobalCluster"]
    resources = concat(
      values(module.database.cluster_arns),
      ["arn:${data.aws_partition.current.partition}:rds::${data.aws_caller_identity.current.account_id}:global-cluster:${module.database.global_cluster_id}"],
    )
  }

  statement {
    sid     = "NodesOfTheClusters"
    actions = ["ec2:StopInstances", "ec2:StartInstances"]
    #checkov:skip=CKV_AWS_356:instance IDs are not known in advance; the condition limits it to the clusters' nodes
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/eks:cluster-name"
      values   = [local.names.primary, local.names.secondary]
    }
  }

  statement {
    sid = "IsolateSubnets"
    actions = [
      "ec2:CreateNetworkAcl", "ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAcl",
      "ec2:ReplaceNetworkAclAssociation", "ec2:CreateTags",
    ]
    resources = ["*"]

    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values = [
        "arn:${data.aws_partition.current.partition}:ec2:${var.primary_region}:${data.aws_caller_identity.current.account_id}:vpc/${module.network_primary.vpc_id}",
        "arn:${data.aws_partition.current.partition}:ec2:${var.secondary_region}:${data.aws_caller_identity.current.account_id}:vpc/${module.network_secondary.vpc_id}",
      ]
    }
  }

  statement {
    sid       = "RegionHealthCheck"
    actions   = ["route53:UpdateHealthCheck", "route53:GetHealthCheck", "route53:GetHealthCheckStatus"]
    resources = [for id in values(module.dns.health_check_ids) : "arn:${data.aws_partition.current.partition}:route53:::healthcheck/${id}"]
  }

  statement {
    sid = "ObserveAndStopConditions"
    actions = [
      "rds:DescribeDBClusters", "rds:DescribeGlobalClusters", "rds:DescribeDBInstances",
      "ec2:DescribeInstances", "ec2:DescribeSubnets", "ec2:DescribeNetworkAcls",
      "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData",
    ]
    resources = ["*"]
  }
}
