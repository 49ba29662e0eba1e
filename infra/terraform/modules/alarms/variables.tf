variable "name" {
  description = "Alarm name prefix, one per region, e.g. trading-staging-eu-west-1."
  type        = string
}

variable "load_balancer_arn_suffix" {
  description = "The region's API load balancer, as CloudWatch names it (app/<name>/<id>)."
  type        = string
}

variable "db_cluster_identifier" {
  description = "The region's Aurora cluster (its replication lag is watched while it is a secondary)."
  type        = string
}

variable "error_ratio_percent" {
  description = "Availability SLO: 5xx responses above this percent of requests over a minute breach it."
  type        = number
  default     = 0.1
}

variable "latency_p99_seconds" {
  description = "Latency SLO: the API's p99 response time above this breaches it."
  type        = number
  default     = 0.25
}

variable "replication_lag_ms" {
  description = "RPO SLO (R9.4, RPO < 1 min): global database replication lag above this breaches it."
  type        = number
  default     = 60000
}

variable "evaluation_periods" {
  description = "Consecutive one-minute periods in breach before an alarm fires."
  type        = number
  default     = 2
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires (SNS topics); drills read the alarm state itself."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
