output "cluster_name" {
  description = "The EKS cluster's name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "The Kubernetes API server's URL (the kubernetes target's `server`, its identity check)."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_arn" {
  description = "The EKS cluster's ARN."
  value       = aws_eks_cluster.this.arn
}

output "node_group_arns" {
  description = "Managed node group ARNs by availability zone."
  value       = { for az, g in aws_eks_node_group.per_az : az => g.arn }
}

output "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider (IRSA)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "drill_runner_role_arn" {
  description = "The role the drill runner's ServiceAccount assumes through IRSA."
  value       = aws_iam_role.drill_runner.arn
}
