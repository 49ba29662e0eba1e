output "global_cluster_id" {
  description = "The global database's identifier (failover-global-cluster names it)."
  value       = aws_rds_global_cluster.this.id
}

output "cluster_ids" {
  description = "The regional clusters' identifiers: primary (the writer at apply time) and secondary."
  value = {
    primary   = aws_rds_cluster.primary.cluster_identifier
    secondary = aws_rds_cluster.secondary.cluster_identifier
  }
}

output "cluster_arns" {
  description = "The regional clusters' ARNs."
  value = {
    primary   = aws_rds_cluster.primary.arn
    secondary = aws_rds_cluster.secondary.arn
  }
}

output "endpoints" {
  description = "Writer (primary) and reader endpoints of each regional cluster."
  value = {
    primary   = { writer = aws_rds_cluster.primary.endpoint, reader = aws_rds_cluster.primary.reader_endpoint }
    secondary = { writer = aws_rds_cluster.secondary.endpoint, reader = aws_rds_cluster.secondary.reader_endpoint }
  }
}
