terraform {
  # terraform_data (built in, 1.4+) and check blocks (1.5+): no provider is downloaded, so
  # `terraform init` works offline.
  required_version = ">= 1.5, < 2.0"

  # State on this machine, one file per environment: drillbit's terraform target initialises with
  # `-backend-config=path=.drill/terraform/<name>/terraform.tfstate` (and TF_DATA_DIR beside it),
  # so neither the state nor .terraform/ lands in the repository.
  backend "local" {}
}
