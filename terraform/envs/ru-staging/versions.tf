terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    yandex = {
      source  = "yandex-cloud/yandex"
      version = "~> 0.140"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl` (state stays in ru).
  backend "s3" {}
}

provider "yandex" {
  endpoint         = "api.cloud.yandex.net:443"
  storage_endpoint = "storage.yandexcloud.net"
  region_id        = "ru-central1"
  zone             = "ru-central1-a"
  cloud_id         = var.cloud_id
  folder_id        = var.folder_id
  # credentials: YC_TOKEN or YC_SERVICE_ACCOUNT_KEY_FILE in the environment
}
