output "role_arn" {
  description = "The role AWS FIS assumes to inject."
  value       = aws_iam_role.fis.arn
}

output "experiment_template_ids" {
  description = "The experiment templates' IDs by fault (empty unless create_experiment_templates)."
  value = var.create_experiment_templates ? {
    db_failover = aws_fis_experiment_template.db_failover[0].id
    az_loss     = aws_fis_experiment_template.az_loss[0].id
  } : {}
}
