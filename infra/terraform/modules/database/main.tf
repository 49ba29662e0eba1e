# An Aurora PostgreSQL global database: a writer cluster in the primary region and a read-only
# secondary cluster in the other, replicated by storage (typically < 1 s of lag: R9.4's RPO < 1 min),
# promotable with `failover-global-cluster` (R9.3). Each regional cluster keeps automated backups
# (point-in-time recovery to any second within the retention), is encrypted with its region's KMS
# key and cannot be deleted while deletion protection is on.

data "aws_partition" "current" {
  provider = aws.primary
}

data "aws_caller_identity" "current" {
  provider = aws.primary
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy: "*" is this key, and the account's own IAM policies then govern it (AWS's default key policy)
  #checkov:skip=CKV_AWS_111:a key policy: "*" is this key, and the account's own IAM policies then govern it (AWS's default key policy)
  #checkov:skip=CKV_AWS_356:a key policy: "*" is this key, and the account's own IAM policies then govern it (AWS's default key policy)
  provider = aws.primary

  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "random_password" "master" {
  length  = 40
  special = false
}

resource "aws_rds_global_cluster" "this" {
  provider = aws.primary

  global_cluster_identifier = var.name
  engine                    = "aurora-postgresql"
  engine_version            = var.engine_version
  database_name             = var.database_name
  storage_encrypted         = true
  deletion_protection       = true
}

# --- primary region -------------------------------------------------------------------------

resource "aws_kms_key" "primary" {
  provider = aws.primary

  description         = "${var.name} Aurora storage (primary region)"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_db_subnet_group" "primary" {
  provider = aws.primary

  name_prefix = "${var.name}-"
  subnet_ids  = var.primary.subnet_ids

  tags = var.tags
}

resource "aws_security_group" "primary" {
  provider = aws.primary

  name_prefix = "${var.name}-db-"
  description = "PostgreSQL from the platform's private networks"
  vpc_id      = var.primary.vpc_id

  ingress {
    description = "PostgreSQL"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = var.primary.allowed_cidrs
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_rds_cluster_parameter_group" "primary" {
  provider = aws.primary

  name_prefix = "${var.name}-primary-"
  family      = "aurora-postgresql${split(".", var.engine_version)[0]}"
  description = "${var.name}: statement logging"

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = var.tags
}

resource "aws_rds_cluster" "primary" {
  #checkov:skip=CKV2_AWS_8:Aurora's continuous backups (PITR over backup_retention_days) and the global database's other region are staging's backups; an AWS Backup vault with cross-account copies belongs to production
  provider = aws.primary

  cluster_identifier        = "${var.name}-primary"
  global_cluster_identifier = aws_rds_global_cluster.this.id
  engine                    = aws_rds_global_cluster.this.engine
  engine_version            = aws_rds_global_cluster.this.engine_version
  database_name             = var.database_name
  master_username           = var.master_username
  master_password           = random_password.master.result

  db_subnet_group_name            = aws_db_subnet_group.primary.name
  vpc_security_group_ids          = [aws_security_group.primary.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.primary.name

  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.primary.arn
  iam_database_authentication_enabled = true
  deletion_protection                 = true
  backup_retention_period             = var.backup_retention_days
  preferred_backup_window             = "02:00-03:00"
  copy_tags_to_snapshot               = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-primary-final"
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  tags = var.tags

  lifecycle {
    # after a global failover the roles flip: Terraform must not fight the promoted writer
    ignore_changes = [global_cluster_identifier, replication_source_identifier]
  }
}

resource "aws_rds_cluster_instance" "primary" {
  count    = var.instances_per_region
  provider = aws.primary

  identifier                            = "${var.name}-primary-${count.index}"
  cluster_identifier                    = aws_rds_cluster.primary.id
  engine                                = aws_rds_cluster.primary.engine
  engine_version                        = aws_rds_cluster.primary.engine_version
  instance_class                        = var.instance_class
  db_subnet_group_name                  = aws_db_subnet_group.primary.name
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.primary.arn
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  promotion_tier                        = count.index
  performance_insights_retention_period = 7

  tags = var.tags
}

# --- secondary region -----------------------------------------------------------------------

resource "aws_kms_key" "secondary" {
  provider = aws.secondary

  description         = "${var.name} Aurora storage (secondary region)"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_db_subnet_group" "secondary" {
  provider = aws.secondary

  name_prefix = "${var.name}-"
  subnet_ids  = var.secondary.subnet_ids

  tags = var.tags
}

resource "aws_security_group" "secondary" {
  provider = aws.secondary

  name_prefix = "${var.name}-db-"
  description = "PostgreSQL from the platform's private networks"
  vpc_id      = var.secondary.vpc_id

  ingress {
    description = "PostgreSQL"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = var.secondary.allowed_cidrs
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_rds_cluster_parameter_group" "secondary" {
  provider = aws.secondary

  name_prefix = "${var.name}-secondary-"
  family      = "aurora-postgresql${split(".", var.engine_version)[0]}"
  description = "${var.name}: statement logging"

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = var.tags
}

resource "aws_rds_cluster" "secondary" {
  #checkov:skip=CKV2_AWS_8:Aurora's continuous backups (PITR over backup_retention_days) and the global database's other region are staging's backups; an AWS Backup vault with cross-account copies belongs to production
  provider = aws.secondary

  # no master credentials and no database name: a secondary takes both from the global database
  cluster_identifier        = "${var.name}-secondary"
  global_cluster_identifier = aws_rds_global_cluster.this.id
  engine                    = aws_rds_global_cluster.this.engine
  engine_version            = aws_rds_global_cluster.this.engine_version

  db_subnet_group_name            = aws_db_subnet_group.secondary.name
  vpc_security_group_ids          = [aws_security_group.secondary.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.secondary.name

  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.secondary.arn
  iam_database_authentication_enabled = true
  deletion_protection                 = true
  backup_retention_period             = var.backup_retention_days
  preferred_backup_window             = "02:00-03:00"
  copy_tags_to_snapshot               = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-secondary-final"
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  tags = var.tags

  lifecycle {
    ignore_changes = [global_cluster_identifier, replication_source_identifier]
  }

  depends_on = [aws_rds_cluster_instance.primary]
}

resource "aws_rds_cluster_instance" "secondary" {
  count    = var.instances_per_region
  provider = aws.secondary

  identifier                            = "${var.name}-secondary-${count.index}"
  cluster_identifier                    = aws_rds_cluster.secondary.id
  engine                                = aws_rds_cluster.secondary.engine
  engine_version                        = aws_rds_cluster.secondary.engine_version
  instance_class                        = var.instance_class
  db_subnet_group_name                  = aws_db_subnet_group.secondary.name
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.secondary.arn
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  promotion_tier                        = count.index
  performance_insights_retention_period = 7

  tags = var.tags
}

# --- enhanced monitoring (IAM is global: one role serves both regions) -----------------------

data "aws_iam_policy_document" "monitoring_assume" {
  provider = aws.primary

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  provider = aws.primary

  name_prefix        = "${substr(var.name, 0, 24)}-rds-mon-"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  provider = aws.primary

  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
