# MedFed kz node, staging. Every zone and endpoint below is checked by modules/region-policy
# (at plan time) and by tests/infra (offline, in `make test`).
module "node" {
  source = "../../modules/node-openstack"

  country                = "kz"
  environment            = "staging"
  region                 = "kz-ala"
  zones                  = ["kz-ala-1a"]
  backup_zones           = ["kz-ala-1b"]
  auth_url               = "https://auth.ps.kz:5000/v3"
  object_store_endpoint  = "https://swift.ps.kz"
  dns_email              = "hostmaster@medfed.kz"
  external_network_id    = var.external_network_id
  floating_ip_pool       = var.floating_ip_pool
  dns_zone               = "kz-staging.medfed.kz."
  app_host               = "kz-staging.medfed.kz"
  state_backend_endpoint = "https://storage.yandexcloud.kz"
  log_sink_host          = "logs.medfed.kz"
  worker_count           = 1

  image_id       = var.image_id
  ssh_public_key = var.ssh_public_key
  admin_cidrs    = var.admin_cidrs
}

output "node" {
  description = "What the Ansible inventory of kz-staging needs."
  value = {
    country     = module.node.country
    app_ip      = module.node.app_public_ip
    private_ips = module.node.private_ips
  }
}
