terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (state stays in kz).
  backend "s3" {}
}

provider "openstack" {
  auth_url = "https://auth.ps.kz:5000/v3"
  region   = "kz-ala"
  # credentials: OS_USERNAME / OS_PASSWORD / OS_PROJECT_NAME (or OS_CLOUD) in the environment
}
