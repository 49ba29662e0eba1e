# The embedded sandbox (drillbit's loopback environment), provisioned through Terraform with the
# built-in terraform_data resource and local-exec: `drill env up` on create, `drill env down` on
# destroy. Nothing here needs a provider download or a network.
#
# Drift (a change made by hand outside Terraform) shows up in `terraform plan -detailed-exitcode`
# (exit 2) as a replacement of terraform_data.sandbox, whose triggers are what the sandbox is made
# from, plus what this configuration reads of the running sandbox at every plan:
# - the topology file edited (its sha256 changes);
# - the state directory changed (another var.state_dir);
# - the sandbox made here brought down by hand (`drill env down`: its state file is gone), replaced
#   by hand (down and up again: another sandbox id), left half up (status not "up"), or its process
#   tree killed (its supervisor's pid is gone; Linux, read through /proc).
# The `sandbox_running` check says which, as a warning. Not seen: a fault a drill injects (a killed
# replica, a lost region: the supervisor runs on), an edit to the Kubernetes manifests the topology
# sizes the API from (recorded per drill in run.json instead).
#
# The create-time provisioner records the sandbox it made in <state_dir>/terraform-made.json (what
# `drill env up` prints); the destroy-time one removes it. So "nothing made here" (before the first
# apply, after a destroy) is in sync, and after a drift is repaired (the replacement runs down, then
# up) the triggers read in sync again: the value a drifted plan shows for them is unknown
# (timestamp()), and apply re-reads it once the old sandbox is gone.

locals {
  repo       = abspath("${path.module}/../../..")
  state_dir  = var.state_dir != null ? abspath(var.state_dir) : "${local.repo}/.drill/terraform/by-hand/env"
  topology   = var.topology != null ? abspath(var.topology) : "${local.repo}/infra/sandbox/topology.yaml"
  state_file = "${local.state_dir}/sandbox/state.json"
  made_file  = "${local.state_dir}/terraform-made.json"
  # shell words, single-quoted
  drill  = join(" ", [for arg in var.drill : format("'%s'", replace(arg, "'", "'\\''"))])
  quoted = { for k, v in { state_dir = local.state_dir, topology = local.topology, made = local.made_file } : k => format("'%s'", replace(v, "'", "'\\''")) }

  # At plan time (and for the check): what runs now, against what this configuration made.
  running = try(jsondecode(file(local.state_file)), null)
  made_id = try(jsondecode(file(local.made_file)).sandbox_id, null)
  problem = (
    local.made_id == null ? null :
    local.running == null ? "the sandbox ${local.made_id} made here is down (brought down outside Terraform)" :
    try(local.running.id, null) != local.made_id ? "another sandbox (${try(local.running.id, "?")}) runs where ${local.made_id} was made" :
    try(local.running.status, null) != "up" ? "the sandbox ${local.made_id} is not up (status ${try(local.running.status, "?")})" :
    fileexists("/proc/self/cmdline") && !fileexists("/proc/${try(local.running.supervisor_pid, 0)}/cmdline") ? "the sandbox ${local.made_id}'s supervisor (pid ${try(local.running.supervisor_pid, "?")}) is gone" :
    null
  )

  # For the outputs: the sandbox's state file, read after terraform_data.sandbox is applied (the reference
  # orders it; a string, never null, so that it is unknown, not null, in a plan that creates the sandbox).
  state_json = terraform_data.sandbox.id == "" ? "" : try(file(local.state_file), "")
  sandbox    = try(jsondecode(local.state_json), null)
  regions    = [for r in yamldecode(file(local.topology)).regions : r.name]
}

resource "terraform_data" "sandbox" {
  triggers_replace = {
    topology_sha256 = filesha256(local.topology)
    state_dir       = local.state_dir
    # Read again when apply replaces the sandbox (after the old one's destroy-time provisioner), so it
    # is inline, not a local: "in sync" when nothing made here runs, or what was made here runs.
    in_sync = (
      try(jsondecode(file(local.made_file)).sandbox_id, null) == null || (
        try(jsondecode(file(local.state_file)).id, null) == try(jsondecode(file(local.made_file)).sandbox_id, null) &&
        try(jsondecode(file(local.state_file)).status, null) == "up" &&
        (!fileexists("/proc/self/cmdline") || fileexists("/proc/${try(jsondecode(file(local.state_file)).supervisor_pid, 0)}/cmdline"))
      )
    ) ? "yes" : timestamp() # unknown until apply, and no refinement a "yes" would break
  }

  # How to make and unmake it, for the provisioners (the destroy-time one may read only self): not
  # what it is, so a change here (drillbit run from another virtualenv) is no drift.
  input = {
    up   = "mkdir -p ${local.quoted.state_dir} && ${local.drill} env up --env sandbox --state-dir ${local.quoted.state_dir} --topology ${local.quoted.topology} > ${local.quoted.made}.tmp && mv ${local.quoted.made}.tmp ${local.quoted.made}"
    down = "${local.drill} env down --env sandbox --state-dir ${local.quoted.state_dir} && rm -f ${local.quoted.made}"
  }

  lifecycle {
    ignore_changes = [input]
  }

  provisioner "local-exec" {
    command = self.input.up
  }

  provisioner "local-exec" {
    when    = destroy
    command = self.input.down
  }
}

check "sandbox_running" {
  assert {
    condition     = local.problem == null
    error_message = coalesce(local.problem, "in sync")
  }
}
