variable "name" {
  description = "The environment's name: prefix of every resource."
  type        = string
  default     = "trading-staging"
}

variable "allowed_account_ids" {
  description = "AWS account IDs this environment may be applied to (the providers refuse any other)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_account_ids) >= 1 && alltrue([for id in var.allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must list at least one 12-digit account ID."
  }
}

variable "primary_region" {
  description = "The primary region: the database's writer and the PRIMARY failover record."
  type        = string
  default     = "eu-west-1"
}

variable "secondary_region" {
  description = "The secondary region: the global database's secondary and the SECONDARY failover record."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = var.secondary_region != var.primary_region
    error_message = "secondary_region must differ from primary_region: one region lost must not be both."
  }
}

variable "primary_azs" {
  description = "Availability zones of the primary region's VPC."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

  validation {
    condition     = length(var.primary_azs) >= 2
    error_message = "primary_azs must name at least 2 availability zones."
  }
}

variable "secondary_azs" {
  description = "Availability zones of the secondary region's VPC."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]

  validation {
    condition     = length(var.secondary_azs) >= 2
    error_message = "secondary_azs must name at least 2 availability zones."
  }
}

variable "vpc_cidrs" {
  description = "The VPCs' CIDR blocks by region role; they must not overlap."
  type = object({
    primary   = string
    secondary = string
  })
  default = { primary = "10.40.0.0/16", secondary = "10.41.0.0/16" }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version of both clusters."
  type        = string
  default     = "1.31"
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed to the clusters' public API endpoints (the drill runner, CI); empty keeps them private."
  type        = list(string)
  default     = []
}

variable "drill_runner_namespace" {
  description = "Namespace of the drill runner's ServiceAccount (drill-runner), as in infra/k8s."
  type        = string
  default     = "trading-staging"
}

variable "db_instance_class" {
  description = "Aurora instance class."
  type        = string
  default     = "db.r6g.large"
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (and point-in-time recovery) kept by each regional cluster."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7
    error_message = "db_backup_retention_days must be at least 7 (R9.1, R9.2)."
  }
}

variable "dns_zone_id" {
  description = "The Route 53 hosted zone of api_domain."
  type        = string
}

variable "api_domain" {
  description = "The API's failover DNS name, e.g. api.staging.example.com."
  type        = string
}

variable "api_load_balancers" {
  description = "Each region's API load balancer (the ingress's, made by the AWS Load Balancer Controller): DNS name, hosted zone ID and ARN suffix (app/<name>/<id>). Keys: primary and secondary."
  type = map(object({
    dns_name   = string
    zone_id    = string
    arn_suffix = string
  }))
}

variable "alarm_actions" {
  description = "SNS topic ARNs the SLO alarms notify."
  type        = list(string)
  default     = []
}

variable "enable_fis_templates" {
  description = "Create AWS FIS experiment templates (DB failover, AZ loss) in the primary region."
  type        = bool
  default     = false
}
