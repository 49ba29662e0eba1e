# The same names and shapes as envs/staging's outputs (what drillbit's targets read from
# `terraform output -json`), filled with what the sandbox has: its front door as api_url, its two
# regions, its Patroni cluster (one database over both regions, a node per region) as the "global"
# database; empty where it has nothing (no Kubernetes, no health checks, no alarms). Plus the
# sandbox's own: state_dir and topology (a sandbox target's fields), sandbox_id, dsn.
# Read from the sandbox's state file after apply (null while it is not up).

output "regions" {
  description = "The regions by role: primary is where the database is bootstrapped."
  value       = { primary = local.regions[0], secondary = try(local.regions[1], null) }
}

output "cluster_names" {
  description = "No Kubernetes cluster: the sandbox runs processes on loopback."
  value       = {}
}

output "kube_contexts" {
  description = "No Kubernetes context (the sandbox-k8s target serves it as one, outside Terraform)."
  value       = {}
}

output "cluster_endpoints" {
  description = "No Kubernetes API server."
  value       = {}
}

output "db_global_cluster_id" {
  description = "The Patroni cluster (scope) spanning both regions."
  value       = try("drillbit-${local.sandbox.id}", null)
}

output "db_cluster_ids" {
  description = "The database node of each region by role (Patroni member names)."
  value       = { primary = local.regions[0], secondary = try(local.regions[1], null) }
}

output "health_check_ids" {
  description = "No health checks: one front door serves both regions."
  value       = {}
}

output "alarm_names" {
  description = "No alarms."
  value       = []
}

output "api_url" {
  description = "The front door's URL (every API replica of both regions behind one socket)."
  value       = try(local.sandbox.front_door_url, null)
}

output "state_dir" {
  description = "The sandbox's state directory (a sandbox target's state_dir)."
  value       = local.state_dir
}

output "topology" {
  description = "The topology file it was made from (a sandbox target's topology)."
  value       = local.topology
}

output "sandbox_id" {
  description = "The running sandbox's id."
  value       = try(local.sandbox.id, null)
}

output "dsn" {
  description = "The application's multi-host DSN (no password: that is in the sandbox's pgpass file)."
  value       = try(local.sandbox.dsn, null)
}
