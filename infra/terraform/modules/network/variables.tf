variable "name" {
  description = "Name prefix of every resource, e.g. trading-staging-eu-west-1."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's IPv4 CIDR block; each AZ gets a /20 private and a /24 public subnet from it."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be a valid IPv4 CIDR of /16 or larger."
  }
}

variable "azs" {
  description = "Availability zones to span, one private and one public subnet (and one NAT gateway) in each."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2 && length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must name at least 2 distinct availability zones: one AZ lost must not be the region lost."
  }
}

variable "flow_log_retention_days" {
  description = "How long the VPC flow logs are kept, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
