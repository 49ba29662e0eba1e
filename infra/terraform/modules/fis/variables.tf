variable "name" {
  description = "Name prefix of the role and the templates, e.g. trading-staging."
  type        = string
}

variable "create_experiment_templates" {
  description = "Create the FIS experiment templates (for teams that inject through FIS and observe with `drill observe`)."
  type        = bool
  default     = false
}

variable "db_cluster_arn" {
  description = "The Aurora cluster the failover template fails over."
  type        = string
}

variable "node_group_arns" {
  description = "The EKS managed node groups the AZ-loss template terminates instances of, by availability zone."
  type        = map(string)
}

variable "az_loss_zone" {
  description = "The availability zone the AZ-loss template empties (a key of node_group_arns)."
  type        = string
}

variable "stop_condition_alarm_arns" {
  description = "CloudWatch alarms that stop an experiment when they fire."
  type        = list(string)

  validation {
    condition     = length(var.stop_condition_alarm_arns) >= 1
    error_message = "A fault needs at least one stop condition alarm."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
