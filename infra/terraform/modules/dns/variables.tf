variable "name" {
  description = "Name prefix of the health checks, e.g. trading-staging."
  type        = string
}

variable "zone_id" {
  description = "The Route 53 hosted zone the API's record lives in."
  type        = string
}

variable "record_name" {
  description = "The API's DNS name, e.g. api.staging.example.com."
  type        = string
}

variable "load_balancers" {
  description = "Each region's API load balancer (the ingress's): DNS name and hosted zone ID. Keys: primary and secondary."
  type = map(object({
    dns_name = string
    zone_id  = string
  }))

  validation {
    condition     = alltrue([for k in ["primary", "secondary"] : contains(keys(var.load_balancers), k)])
    error_message = "load_balancers needs a primary and a secondary region."
  }
}

variable "health_check_path" {
  description = "The path Route 53 asks: the API's readiness (database reachable), not its liveness."
  type        = string
  default     = "/readyz"
}

variable "health_check_interval_s" {
  description = "Seconds between a checker's requests: 10 (fast) or 30."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 30], var.health_check_interval_s)
    error_message = "health_check_interval_s must be 10 or 30."
  }
}

variable "failure_threshold" {
  description = "Consecutive failures before a region is unhealthy (failover after about interval x threshold)."
  type        = number
  default     = 3
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
