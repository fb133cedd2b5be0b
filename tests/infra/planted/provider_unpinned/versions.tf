terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    openstack = {
      version = "~> 3.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (state stays in uz).
  backend "s3" {}
}

provider "openstack" {
  auth_url = "https://auth.uzcloud.uz:5000/v3"
  region   = "uz-tas"
  # credentials: OS_USERNAME / OS_PASSWORD / OS_PROJECT_NAME (or OS_CLOUD) in the environment
}
