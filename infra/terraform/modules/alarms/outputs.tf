output "alarm_names" {
  description = "Every alarm's name: the SLO alarms and the composite stop condition."
  value = [
    aws_cloudwatch_metric_alarm.api_error_ratio.alarm_name,
    aws_cloudwatch_metric_alarm.api_latency_p99.alarm_name,
    aws_cloudwatch_metric_alarm.db_replication_lag.alarm_name,
    aws_cloudwatch_composite_alarm.slo.alarm_name,
  ]
}

output "stop_condition_alarm_arn" {
  description = "The composite alarm's ARN: the stop condition of a drill or an AWS FIS template."
  value       = aws_cloudwatch_composite_alarm.slo.arn
}
