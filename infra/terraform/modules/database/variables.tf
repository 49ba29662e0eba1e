variable "name" {
  description = "Name of the global database and prefix of its regional clusters, e.g. trading-staging."
  type        = string
}

variable "engine_version" {
  description = "Aurora PostgreSQL engine version (one that supports global databases)."
  type        = string
  default     = "16.6"
}

variable "database_name" {
  description = "The database created in the cluster."
  type        = string
  default     = "trading"
}

variable "master_username" {
  description = "The master user's name (the password is generated and never leaves the state)."
  type        = string
  default     = "trading_admin"
}

variable "instance_class" {
  description = "Instance class of every cluster instance."
  type        = string
  default     = "db.r6g.large"
}

variable "instances_per_region" {
  description = "Instances per regional cluster: a writer (primary region) and readers, each in another AZ."
  type        = number
  default     = 2

  validation {
    condition     = var.instances_per_region >= 2
    error_message = "instances_per_region must be at least 2: a failover target in another AZ."
  }
}

variable "backup_retention_days" {
  description = "Automated backups kept, in days; point-in-time recovery reaches back this far."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "primary" {
  description = "The primary region's network: private subnet IDs (at least 2 AZs) and the CIDRs allowed to connect."
  type = object({
    subnet_ids    = list(string)
    allowed_cidrs = list(string)
    vpc_id        = string
  })

  validation {
    condition     = length(var.primary.subnet_ids) >= 2
    error_message = "primary.subnet_ids must span at least 2 availability zones."
  }
}

variable "secondary" {
  description = "The secondary region's network: private subnet IDs (at least 2 AZs) and the CIDRs allowed to connect."
  type = object({
    subnet_ids    = list(string)
    allowed_cidrs = list(string)
    vpc_id        = string
  })

  validation {
    condition     = length(var.secondary.subnet_ids) >= 2
    error_message = "secondary.subnet_ids must span at least 2 availability zones."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
