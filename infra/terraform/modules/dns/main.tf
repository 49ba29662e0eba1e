# Route 53 failover between the regions' load balancers: the PRIMARY record answers while its health
# check passes, then the SECONDARY (R13.3). The health checks ask the API's readiness through each
# load balancer, so a region whose API cannot reach its database fails over as well.

locals {
  roles = { primary = "PRIMARY", secondary = "SECONDARY" }
}

resource "aws_route53_health_check" "api" {
  for_each = local.roles

  type              = "HTTPS"
  fqdn              = var.load_balancers[each.key].dns_name
  port              = 443
  resource_path     = var.health_check_path
  request_interval  = var.health_check_interval_s
  failure_threshold = var.failure_threshold
  measure_latency   = true
  enable_sni        = true

  tags = merge(var.tags, { Name = "${var.name}-api-${each.key}" })
}

resource "aws_route53_record" "api" {
  for_each = local.roles

  zone_id         = var.zone_id
  name            = var.record_name
  type            = "A"
  set_identifier  = "${var.name}-${each.key}"
  health_check_id = aws_route53_health_check.api[each.key].id

  failover_routing_policy {
    type = each.value
  }

  alias {
    name                   = var.load_balancers[each.key].dns_name
    zone_id                = var.load_balancers[each.key].zone_id
    evaluate_target_health = true
  }
}
