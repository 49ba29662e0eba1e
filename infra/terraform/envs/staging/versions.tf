terraform {
  required_version = ">= 1.6, < 2.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # State in S3, one key per environment: `terraform init -backend-config=backend.hcl` with
  # bucket, key, region, encrypt = true and use_lockfile = true (nothing account-specific here).
  backend "s3" {}
}
