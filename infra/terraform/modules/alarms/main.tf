# CloudWatch alarms on the platform's SLOs in one region. They page through alarm_actions, and they
# are the stop conditions of drills (drillbit's AWS target and AWS FIS templates alike): an alarm
# going to ALARM mid-drill aborts it and rolls the fault back.

resource "aws_cloudwatch_metric_alarm" "api_error_ratio" {
  alarm_name          = "${var.name}-api-error-ratio"
  alarm_description   = "Availability SLO: API 5xx above ${var.error_ratio_percent}% of requests (R14.2)"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = var.evaluation_periods
  threshold           = var.error_ratio_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "ratio"
    expression  = "100 * FILL(errors, 0) / requests"
    label       = "5xx percent"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = var.load_balancer_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = var.load_balancer_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "api_latency_p99" {
  alarm_name          = "${var.name}-api-latency-p99"
  alarm_description   = "Latency SLO: API p99 above ${var.latency_p99_seconds} s (R14.2)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = var.load_balancer_arn_suffix }
  extended_statistic  = "p99"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = var.evaluation_periods
  threshold           = var.latency_p99_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}

# Emitted by a secondary cluster only: after a global failover the other region's alarm takes over.
resource "aws_cloudwatch_metric_alarm" "db_replication_lag" {
  alarm_name          = "${var.name}-db-replication-lag"
  alarm_description   = "RPO SLO: global database replication lag above ${var.replication_lag_ms} ms (R9.4)"
  namespace           = "AWS/RDS"
  metric_name         = "AuroraGlobalDBReplicationLag"
  dimensions          = { DBClusterIdentifier = var.db_cluster_identifier }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = var.evaluation_periods
  threshold           = var.replication_lag_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}

# One stop condition for the whole region: any SLO alarm.
resource "aws_cloudwatch_composite_alarm" "slo" {
  alarm_name        = "${var.name}-slo"
  alarm_description = "Any of the region's SLO alarms: a drill's stop condition"
  alarm_rule = join(" OR ", [for a in [
    aws_cloudwatch_metric_alarm.api_error_ratio,
    aws_cloudwatch_metric_alarm.api_latency_p99,
    aws_cloudwatch_metric_alarm.db_replication_lag,
  ] : "ALARM(\"${a.alarm_name}\")"])
  alarm_actions = var.alarm_actions
  ok_actions    = var.alarm_actions

  tags = var.tags
}
