variable "name" {
  description = "The cluster's name, e.g. trading-staging-eu-west-1."
  type        = string
}

variable "kubernetes_version" {
  description = "The EKS Kubernetes version (the manifests under test are checked against 1.31)."
  type        = string
  default     = "1.31"
}

variable "private_subnet_ids" {
  description = "Private subnet IDs by availability zone: the control plane's ENIs and one managed node group per AZ."
  type        = map(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids must span at least 2 availability zones."
  }
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint (the drill runner, CI); empty keeps the endpoint private."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  description = "Instance types of the managed node groups."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "nodes_per_az" {
  description = "Size of each AZ's node group: min, desired and max."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = { min = 1, desired = 2, max = 4 }

  validation {
    condition     = var.nodes_per_az.min >= 1 && var.nodes_per_az.min <= var.nodes_per_az.desired && var.nodes_per_az.desired <= var.nodes_per_az.max
    error_message = "nodes_per_az needs 1 <= min <= desired <= max: every AZ keeps a node."
  }
}

variable "drill_runner_service_account" {
  description = "The drill runner's ServiceAccount (namespace and name) that IRSA lets assume the drill runner role."
  type = object({
    namespace = string
    name      = string
  })
  default = { namespace = "trading-staging", name = "drill-runner" }
}

variable "drill_runner_policy_json" {
  description = "The IAM policy (JSON) of the drill runner role: what the AWS target's faults, probes and stop conditions call."
  type        = string
}

variable "log_retention_days" {
  description = "How long the control plane's logs are kept, in days."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
