# Planted violation for tests/infra/test_planted.py: log_sink_abroad. Not a real root.
# MedFed ru node, prod. Every zone and endpoint below is checked by modules/region-policy
# (at plan time) and by tests/infra (offline, in `make test`).
module "node" {
  source = "../../../../terraform/modules/node-yandex"

  country                = "ru"
  environment            = "prod"
  region                 = "ru-central1"
  zones                  = ["ru-central1-a", "ru-central1-b", "ru-central1-d"]
  backup_zones           = ["ru-central1-d"]
  api_endpoint           = "api.cloud.yandex.net:443"
  storage_endpoint       = "https://storage.yandexcloud.net"
  dns_zone               = "ru.medfed.ru."
  app_host               = "ru.medfed.ru"
  state_backend_endpoint = "https://storage.yandexcloud.net"
  log_sink_host          = "logs.medfed.kz"
  worker_count           = 2

  image_id       = var.image_id
  ssh_public_key = var.ssh_public_key
  admin_cidrs    = var.admin_cidrs
}

output "node" {
  description = "What the Ansible inventory of ru-prod needs."
  value = {
    country     = module.node.country
    app_ip      = module.node.app_public_ip
    private_ips = module.node.private_ips
  }
}
