# The trading platform's staging environment in two regions: per region a VPC over three AZs and an
# EKS cluster; an Aurora PostgreSQL global database spanning both; Route 53 failover between the
# regions' API load balancers; SLO alarms per region (the drills' stop conditions); the FIS role.

locals {
  tags = {
    Environment = "staging"
    Project     = "trading-platform"
    ManagedBy   = "terraform"
  }
  names = {
    primary   = "${var.name}-${var.primary_region}"
    secondary = "${var.name}-${var.secondary_region}"
  }
}

module "network_primary" {
  source    = "../../modules/network"
  providers = { aws = aws.primary }

  name       = local.names.primary
  cidr_block = var.vpc_cidrs.primary
  azs        = var.primary_azs
}

module "network_secondary" {
  source    = "../../modules/network"
  providers = { aws = aws.secondary }

  name       = local.names.secondary
  cidr_block = var.vpc_cidrs.secondary
  azs        = var.secondary_azs
}

module "database" {
  source = "../../modules/database"
  providers = {
    aws.primary   = aws.primary
    aws.secondary = aws.secondary
    random        = random
  }

  name                  = var.name
  instance_class        = var.db_instance_class
  backup_retention_days = var.db_backup_retention_days
  primary = {
    subnet_ids    = values(module.network_primary.private_subnet_ids)
    allowed_cidrs = [var.vpc_cidrs.primary]
    vpc_id        = module.network_primary.vpc_id
  }
  secondary = {
    subnet_ids    = values(module.network_secondary.private_subnet_ids)
    allowed_cidrs = [var.vpc_cidrs.secondary]
    vpc_id        = module.network_secondary.vpc_id
  }
}

module "eks_primary" {
  source    = "../../modules/eks"
  providers = { aws = aws.primary, tls = tls }

  name                         = local.names.primary
  kubernetes_version           = var.kubernetes_version
  private_subnet_ids           = module.network_primary.private_subnet_ids
  public_access_cidrs          = var.eks_public_access_cidrs
  drill_runner_service_account = { namespace = var.drill_runner_namespace, name = "drill-runner" }
  drill_runner_policy_json     = data.aws_iam_policy_document.drill_runner.json
}

module "eks_secondary" {
  source    = "../../modules/eks"
  providers = { aws = aws.secondary, tls = tls }

  name                         = local.names.secondary
  kubernetes_version           = var.kubernetes_version
  private_subnet_ids           = module.network_secondary.private_subnet_ids
  public_access_cidrs          = var.eks_public_access_cidrs
  drill_runner_service_account = { namespace = var.drill_runner_namespace, name = "drill-runner" }
  drill_runner_policy_json     = data.aws_iam_policy_document.drill_runner.json
}

module "dns" {
  source    = "../../modules/dns"
  providers = { aws = aws.primary }

  name           = var.name
  zone_id        = var.dns_zone_id
  record_name    = var.api_domain
  load_balancers = { for role, lb in var.api_load_balancers : role => { dns_name = lb.dns_name, zone_id = lb.zone_id } }
}

module "alarms_primary" {
  source    = "../../modules/alarms"
  providers = { aws = aws.primary }

  name                     = local.names.primary
  load_balancer_arn_suffix = var.api_load_balancers["primary"].arn_suffix
  db_cluster_identifier    = module.database.cluster_ids.primary
  alarm_actions            = var.alarm_actions
}

module "alarms_secondary" {
  source    = "../../modules/alarms"
  providers = { aws = aws.secondary }

  name                     = local.names.secondary
  load_balancer_arn_suffix = var.api_load_balancers["secondary"].arn_suffix
  db_cluster_identifier    = module.database.cluster_ids.secondary
  alarm_actions            = var.alarm_actions
}

module "fis" {
  source    = "../../modules/fis"
  providers = { aws = aws.primary }

  name                        = var.name
  create_experiment_templates = var.enable_fis_templates
  db_cluster_arn              = module.database.cluster_arns.primary
  node_group_arns             = module.eks_primary.node_group_arns
  az_loss_zone                = var.primary_azs[0]
  stop_condition_alarm_arns   = [module.alarms_primary.stop_condition_alarm_arn]
}
