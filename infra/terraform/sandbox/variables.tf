variable "state_dir" {
  description = "The sandbox's state directory (`drill env up --state-dir`): its state file is <state_dir>/sandbox/state.json. Default: .drill/terraform/by-hand/env in the repository."
  type        = string
  default     = null
}

variable "topology" {
  description = "The sandbox topology file. Default: infra/sandbox/topology.yaml in the repository."
  type        = string
  default     = null

  validation {
    condition     = var.topology == null || fileexists(coalesce(var.topology, "-"))
    error_message = "The topology must be an existing file (infra/sandbox/topology.yaml, or a copy)."
  }
}

variable "drill" {
  description = "The command that runs drillbit's CLI, as a list: [\"drill\"] or [\"/path/to/python\", \"-m\", \"drillbit.cli\"]."
  type        = list(string)
  default     = ["drill"]

  validation {
    condition     = length(var.drill) > 0
    error_message = "Give the drill command, e.g. [\"drill\"]."
  }
}
