# Planted violation for tests/infra/test_planted.py: provider_unpinned. Not a real root.
# MedFed uz node, prod. Every zone and endpoint below is checked by modules/region-policy
# (at plan time) and by tests/infra (offline, in `make test`).
module "node" {
  source = "../../../../terraform/modules/node-openstack"

  country                = "uz"
  environment            = "prod"
  region                 = "uz-tas"
  zones                  = ["uz-tas-1a", "uz-tas-1b"]
  backup_zones           = ["uz-sam-1a"]
  auth_url               = "https://auth.uzcloud.uz:5000/v3"
  object_store_endpoint  = "https://swift.uzcloud.uz"
  dns_email              = "hostmaster@medfed.uz"
  external_network_id    = var.external_network_id
  floating_ip_pool       = var.floating_ip_pool
  dns_zone               = "uz.medfed.uz."
  app_host               = "uz.medfed.uz"
  state_backend_endpoint = "https://s3.uzcloud.uz"
  log_sink_host          = "logs.medfed.uz"
  worker_count           = 2

  image_id       = var.image_id
  ssh_public_key = var.ssh_public_key
  admin_cidrs    = var.admin_cidrs
}

output "node" {
  description = "What the Ansible inventory of uz-prod needs."
  value = {
    country     = module.node.country
    app_ip      = module.node.app_public_ip
    private_ips = module.node.private_ips
  }
}
