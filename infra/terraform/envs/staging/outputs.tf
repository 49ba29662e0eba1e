# Exactly what drillbit's targets read (`terraform output -json`): the same names and shapes as the
# offline sandbox root, so a drill.yaml entry works with either.

output "regions" {
  description = "The regions by role."
  value       = { primary = var.primary_region, secondary = var.secondary_region }
}

output "cluster_names" {
  description = "The EKS clusters' names by region role."
  value       = { primary = module.eks_primary.cluster_name, secondary = module.eks_secondary.cluster_name }
}

output "kube_contexts" {
  description = "The kubeconfig contexts by region role, as `aws eks update-kubeconfig --name NAME --alias NAME` names them."
  value       = { primary = module.eks_primary.cluster_name, secondary = module.eks_secondary.cluster_name }
}

output "cluster_endpoints" {
  description = "The Kubernetes API servers by region role (a kubernetes target's `server`: its identity check)."
  value       = { primary = module.eks_primary.cluster_endpoint, secondary = module.eks_secondary.cluster_endpoint }
}

output "db_global_cluster_id" {
  description = "The Aurora global database's identifier."
  value       = module.database.global_cluster_id
}

output "db_cluster_ids" {
  description = "The regional Aurora clusters' identifiers by region role."
  value       = module.database.cluster_ids
}

output "health_check_ids" {
  description = "The Route 53 health checks of the API by region role."
  value       = module.dns.health_check_ids
}

output "alarm_names" {
  description = "Every SLO alarm and stop condition, both regions."
  value       = concat(module.alarms_primary.alarm_names, module.alarms_secondary.alarm_names)
}

output "api_url" {
  description = "The API's base URL, through the failover record."
  value       = "https://${var.api_domain}"
}

output "drill_runner_role_arns" {
  description = "The drill runner's IRSA role by region role (annotate its ServiceAccount with it)."
  value       = { primary = module.eks_primary.drill_runner_role_arn, secondary = module.eks_secondary.drill_runner_role_arn }
}
