# One MedFed node on Yandex Cloud: private network, security groups, KMS-encrypted disks, VMs for the
# app, Celery workers, PostgreSQL and MinIO, in-country buckets and backups, public DNS.
# Every country-dependent input goes through region-policy first; resources only use its outputs.

module "policy" {
  source = "../region-policy"

  country      = var.country
  zones        = var.zones
  backup_zones = var.backup_zones
  region       = var.region
  endpoint_hosts = {
    api     = var.api_endpoint
    storage = var.storage_endpoint
    dns     = trimsuffix(var.dns_zone, ".")
    app     = var.app_host
  }
  state_backend_endpoint = var.state_backend_endpoint
  log_sink_host          = var.log_sink_host
}

locals {
  name        = "medfed-${module.policy.country}-${var.environment}"
  zones       = module.policy.zones
  backup_zone = module.policy.backup_zones[0]
  main_zone   = local.zones[0]
  labels = {
    app         = "medfed"
    country     = module.policy.country
    environment = var.environment
  }
  ssh_metadata = { ssh-keys = "deploy:${var.ssh_public_key}" }

  data_disks = {
    app    = { zone = local.main_zone, size = var.sizes["app"].disk }
    db     = { zone = local.main_zone, size = var.sizes["db"].disk }
    store  = { zone = local.main_zone, size = var.sizes["store"].disk }
    backup = { zone = local.backup_zone, size = var.sizes["backup"].disk }
  }
  buckets = toset(["personal", "shared", "backups"])
}

# --- network -------------------------------------------------------------------------------------

resource "yandex_vpc_network" "node" {
  name   = local.name
  labels = local.labels
}

resource "yandex_vpc_gateway" "egress" {
  name = "${local.name}-egress"
  shared_egress_gateway {}
}

resource "yandex_vpc_route_table" "egress" {
  name       = "${local.name}-egress"
  network_id = yandex_vpc_network.node.id

  static_route {
    destination_prefix = "0.0.0.0/0"
    gateway_id         = yandex_vpc_gateway.egress.id
  }
}

resource "yandex_vpc_subnet" "node" {
  for_each = { for i, zone in local.zones : zone => var.subnet_cidrs[i] }

  name           = "${local.name}-${each.key}"
  zone           = each.key
  network_id     = yandex_vpc_network.node.id
  v4_cidr_blocks = [each.value]
  route_table_id = yandex_vpc_route_table.egress.id
  labels         = local.labels
}

resource "yandex_vpc_security_group" "app" {
  name       = "${local.name}-app"
  network_id = yandex_vpc_network.node.id

  ingress {
    description    = "HTTPS from anywhere (nginx)"
    protocol       = "TCP"
    port           = 443
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description    = "HTTP, redirected to HTTPS and used for ACME"
    protocol       = "TCP"
    port           = 80
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
  ingress {
    description    = "SSH from the admins"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.admin_cidrs
  }
  egress {
    description    = "Anything inside the node's network"
    protocol       = "ANY"
    v4_cidr_blocks = var.subnet_cidrs
  }
  egress {
    description    = "HTTPS out (in-country APIs, peer nodes' sync inbox)"
    protocol       = "TCP"
    port           = 443
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "yandex_vpc_security_group" "internal" {
  name       = "${local.name}-internal"
  network_id = yandex_vpc_network.node.id

  ingress {
    description    = "PostgreSQL, broker, MinIO from inside the node only"
    protocol       = "TCP"
    from_port      = 5432
    to_port        = 9001
    v4_cidr_blocks = var.subnet_cidrs
  }
  ingress {
    description    = "SSH from the admins"
    protocol       = "TCP"
    port           = 22
    v4_cidr_blocks = var.admin_cidrs
  }
  egress {
    description    = "Inside the node's network only"
    protocol       = "ANY"
    v4_cidr_blocks = var.subnet_cidrs
  }
}

# --- encryption ----------------------------------------------------------------------------------

resource "yandex_kms_symmetric_key" "disks" {
  name              = "${local.name}-disks"
  default_algorithm = "AES_256"
  rotation_period   = "8760h"
  labels            = local.labels
}

resource "yandex_kms_symmetric_key" "buckets" {
  name              = "${local.name}-buckets"
  default_algorithm = "AES_256"
  rotation_period   = "8760h"
  labels            = local.labels
}

# --- disks (all encrypted) -----------------------------------------------------------------------

resource "yandex_compute_disk" "boot" {
  for_each = merge(
    { app = local.main_zone, db = local.main_zone, store = local.main_zone, backup = local.backup_zone },
    { for i in range(var.worker_count) : "worker-${i}" => local.zones[i % length(local.zones)] },
  )

  name       = "${local.name}-${each.key}-boot"
  zone       = each.value
  image_id   = var.image_id
  size       = 20
  type       = "network-ssd"
  kms_key_id = yandex_kms_symmetric_key.disks.id
  labels     = local.labels
}

resource "yandex_compute_disk" "data" {
  for_each = local.data_disks

  name       = "${local.name}-${each.key}-data"
  zone       = each.value.zone
  size       = each.value.size
  type       = "network-ssd"
  kms_key_id = yandex_kms_symmetric_key.disks.id
  labels     = local.labels
}

# --- VMs -----------------------------------------------------------------------------------------

resource "yandex_vpc_address" "app" {
  name = "${local.name}-app"

  external_ipv4_address {
    zone_id = local.main_zone
  }
}

resource "yandex_compute_instance" "app" {
  name        = "${local.name}-app"
  hostname    = "app"
  zone        = local.main_zone
  platform_id = var.platform_id
  labels      = merge(local.labels, { role = "app" })
  metadata    = local.ssh_metadata

  resources {
    cores  = var.sizes["app"].cores
    memory = var.sizes["app"].memory
  }
  boot_disk {
    disk_id = yandex_compute_disk.boot["app"].id
  }
  secondary_disk {
    disk_id = yandex_compute_disk.data["app"].id
  }
  network_interface {
    subnet_id          = yandex_vpc_subnet.node[local.main_zone].id
    security_group_ids = [yandex_vpc_security_group.app.id]
    nat                = true
    nat_ip_address     = yandex_vpc_address.app.external_ipv4_address[0].address
  }
}

resource "yandex_compute_instance" "worker" {
  count = var.worker_count

  name        = "${local.name}-worker-${count.index}"
  hostname    = "worker-${count.index}"
  zone        = local.zones[count.index % length(local.zones)]
  platform_id = var.platform_id
  labels      = merge(local.labels, { role = "worker" })
  metadata    = local.ssh_metadata

  resources {
    cores  = var.sizes["worker"].cores
    memory = var.sizes["worker"].memory
  }
  boot_disk {
    disk_id = yandex_compute_disk.boot["worker-${count.index}"].id
  }
  network_interface {
    subnet_id          = yandex_vpc_subnet.node[local.zones[count.index % length(local.zones)]].id
    security_group_ids = [yandex_vpc_security_group.internal.id]
  }
}

resource "yandex_compute_instance" "internal" {
  for_each = {
    db     = local.main_zone
    store  = local.main_zone
    backup = local.backup_zone
  }

  name        = "${local.name}-${each.key}"
  hostname    = each.key
  zone        = each.value
  platform_id = var.platform_id
  labels      = merge(local.labels, { role = each.key })
  metadata    = local.ssh_metadata

  resources {
    cores  = var.sizes[each.key].cores
    memory = var.sizes[each.key].memory
  }
  boot_disk {
    disk_id = yandex_compute_disk.boot[each.key].id
  }
  secondary_disk {
    disk_id = yandex_compute_disk.data[each.key].id
  }
  network_interface {
    # the backup VM sits in its backup zone, which therefore needs a subnet (checked below)
    subnet_id          = yandex_vpc_subnet.node[each.value].id
    security_group_ids = [yandex_vpc_security_group.internal.id]
  }

  lifecycle {
    precondition {
      condition     = contains(local.zones, each.value)
      error_message = "${module.policy.country}: ${each.key} VM zone ${each.value} has no subnet; list it in zones as well."
    }
  }
}

# --- backups: disk snapshots, kept in the same region --------------------------------------------

resource "yandex_compute_snapshot_schedule" "nightly" {
  name = "${local.name}-nightly"

  schedule_policy {
    expression = "0 1 * * *"
  }
  snapshot_count = 14
  disk_ids       = [yandex_compute_disk.data["db"].id, yandex_compute_disk.data["store"].id]
  labels         = local.labels
}

# --- buckets: in the country's Object Storage, SSE-KMS, versioned, no replication ---------------

resource "yandex_iam_service_account" "storage" {
  name = "${local.name}-storage"
}

resource "yandex_iam_service_account_static_access_key" "storage" {
  service_account_id = yandex_iam_service_account.storage.id
  description        = "MedFed ${module.policy.country} node buckets"
}

resource "yandex_storage_bucket" "node" {
  for_each = local.buckets

  bucket     = "medfed-${module.policy.country}-${var.environment}-${each.key}"
  access_key = yandex_iam_service_account_static_access_key.storage.access_key
  secret_key = yandex_iam_service_account_static_access_key.storage.secret_key
  acl        = "private"

  versioning {
    enabled = true
  }
  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.buckets.id
        sse_algorithm     = "aws:kms"
      }
    }
  }
}

# --- DNS -----------------------------------------------------------------------------------------

resource "yandex_dns_zone" "public" {
  name   = replace("${local.name}-public", ".", "-")
  zone   = var.dns_zone
  public = true
  labels = local.labels
}

resource "yandex_dns_recordset" "app" {
  zone_id = yandex_dns_zone.public.id
  name    = "${var.app_host}."
  type    = "A"
  ttl     = 300
  data    = [yandex_vpc_address.app.external_ipv4_address[0].address]
}
