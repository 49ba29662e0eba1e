output "vpc_id" {
  description = "The VPC's ID."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's CIDR block."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "The availability zones the VPC spans."
  value       = var.azs
}

output "private_subnet_ids" {
  description = "Private subnet IDs by availability zone (EKS nodes, the database)."
  value       = { for az, s in aws_subnet.private : az => s.id }
}

output "public_subnet_ids" {
  description = "Public subnet IDs by availability zone (internet-facing load balancers, NAT gateways)."
  value       = { for az, s in aws_subnet.public : az => s.id }
}
