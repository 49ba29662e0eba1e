output "health_check_ids" {
  description = "The API health checks' IDs by region role (primary, secondary)."
  value       = { for role, hc in aws_route53_health_check.api : role => hc.id }
}

output "api_fqdn" {
  description = "The failover record's name."
  value       = var.record_name
}
