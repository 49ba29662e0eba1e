# Two regions, two provider configurations; every module gets its region explicitly.

provider "aws" {
  alias               = "primary"
  region              = var.primary_region
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias               = "secondary"
  region              = var.secondary_region
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = local.tags
  }
}

# Configuration-free providers, passed to the modules that use them.
provider "random" {}
provider "tls" {}
