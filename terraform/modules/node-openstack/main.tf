# One MedFed node on an in-country OpenStack cloud: private network, security groups, encrypted Cinder
# volumes, VMs for the app, Celery workers, PostgreSQL and MinIO, Swift containers and backups in-country,
# Designate DNS. Every country-dependent input goes through region-policy first.

module "policy" {
  source = "../region-policy"

  country      = var.country
  zones        = var.zones
  backup_zones = var.backup_zones
  region       = var.region
  endpoint_hosts = {
    auth         = var.auth_url
    object_store = var.object_store_endpoint
    dns          = trimsuffix(var.dns_zone, ".")
    app          = var.app_host
  }
  state_backend_endpoint = var.state_backend_endpoint
  log_sink_host          = var.log_sink_host
}

locals {
  name        = "medfed-${module.policy.country}-${var.environment}"
  zones       = module.policy.zones
  main_zone   = local.zones[0]
  backup_zone = module.policy.backup_zones[0]
  region      = module.policy.region
  metadata = {
    app         = "medfed"
    country     = module.policy.country
    environment = var.environment
  }

  vms = merge(
    {
      app    = { zone = local.main_zone, flavor = var.flavors["app"], data = true }
      db     = { zone = local.main_zone, flavor = var.flavors["db"], data = true }
      store  = { zone = local.main_zone, flavor = var.flavors["store"], data = true }
      backup = { zone = local.backup_zone, flavor = var.flavors["backup"], data = true }
    },
    { for i in range(var.worker_count) : "worker-${i}" => { zone = local.zones[i % length(local.zones)], flavor = var.flavors["worker"], data = false } },
  )
  data_vms   = { for k, v in local.vms : k => v if v.data }
  containers = toset(["personal", "shared", "backups"])
}

# --- network -------------------------------------------------------------------------------------

resource "openstack_networking_network_v2" "node" {
  name           = local.name
  region         = local.region
  admin_state_up = true
}

resource "openstack_networking_subnet_v2" "node" {
  name       = local.name
  region     = local.region
  network_id = openstack_networking_network_v2.node.id
  cidr       = var.subnet_cidr
  ip_version = 4
}

resource "openstack_networking_router_v2" "node" {
  name                = local.name
  region              = local.region
  external_network_id = var.external_network_id
}

resource "openstack_networking_router_interface_v2" "node" {
  region    = local.region
  router_id = openstack_networking_router_v2.node.id
  subnet_id = openstack_networking_subnet_v2.node.id
}

resource "openstack_networking_secgroup_v2" "app" {
  name        = "${local.name}-app"
  region      = local.region
  description = "MedFed app VM: HTTPS/HTTP from anywhere, SSH from the admins"
}

resource "openstack_networking_secgroup_v2" "internal" {
  name        = "${local.name}-internal"
  region      = local.region
  description = "MedFed internal VMs: reachable from the node's subnet only"
}

resource "openstack_networking_secgroup_rule_v2" "app_web" {
  for_each = toset(["80", "443"])

  region            = local.region
  security_group_id = openstack_networking_secgroup_v2.app.id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = tonumber(each.value)
  port_range_max    = tonumber(each.value)
  remote_ip_prefix  = "0.0.0.0/0"
}

resource "openstack_networking_secgroup_rule_v2" "ssh" {
  for_each = { for pair in setproduct(["app", "internal"], var.admin_cidrs) : "${pair[0]}-${pair[1]}" => pair }

  region            = local.region
  security_group_id = each.value[0] == "app" ? openstack_networking_secgroup_v2.app.id : openstack_networking_secgroup_v2.internal.id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 22
  port_range_max    = 22
  remote_ip_prefix  = each.value[1]
}

resource "openstack_networking_secgroup_rule_v2" "internal_from_subnet" {
  region            = local.region
  security_group_id = openstack_networking_secgroup_v2.internal.id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 5432
  port_range_max    = 9001
  remote_ip_prefix  = var.subnet_cidr
}

# --- volumes (every one of the encrypted volume type) --------------------------------------------

resource "openstack_blockstorage_volume_v3" "boot" {
  for_each = local.vms

  name              = "${local.name}-${each.key}-boot"
  region            = local.region
  availability_zone = each.value.zone
  size              = 20
  image_id          = var.image_id
  volume_type       = var.encrypted_volume_type
  metadata          = local.metadata
}

resource "openstack_blockstorage_volume_v3" "data" {
  for_each = local.data_vms

  name              = "${local.name}-${each.key}-data"
  region            = local.region
  availability_zone = each.value.zone
  size              = var.disk_sizes[each.key]
  volume_type       = var.encrypted_volume_type
  metadata          = local.metadata
}

# --- VMs -----------------------------------------------------------------------------------------

resource "openstack_compute_keypair_v2" "deploy" {
  name       = "${local.name}-deploy"
  region     = local.region
  public_key = var.ssh_public_key
}

resource "openstack_compute_instance_v2" "node" {
  for_each = local.vms

  name              = "${local.name}-${each.key}"
  region            = local.region
  availability_zone = each.value.zone
  flavor_name       = each.value.flavor
  key_pair          = openstack_compute_keypair_v2.deploy.name
  security_groups   = [each.key == "app" ? openstack_networking_secgroup_v2.app.name : openstack_networking_secgroup_v2.internal.name]
  metadata          = merge(local.metadata, { role = split("-", each.key)[0] })

  block_device {
    uuid                  = openstack_blockstorage_volume_v3.boot[each.key].id
    source_type           = "volume"
    destination_type      = "volume"
    boot_index            = 0
    delete_on_termination = false
  }

  network {
    uuid = openstack_networking_network_v2.node.id
  }

  depends_on = [openstack_networking_subnet_v2.node]
}

resource "openstack_compute_volume_attach_v2" "data" {
  for_each = local.data_vms

  region      = local.region
  instance_id = openstack_compute_instance_v2.node[each.key].id
  volume_id   = openstack_blockstorage_volume_v3.data[each.key].id
}

resource "openstack_networking_floatingip_v2" "app" {
  region = local.region
  pool   = var.floating_ip_pool
}

resource "openstack_networking_floatingip_associate_v2" "app" {
  region      = local.region
  floating_ip = openstack_networking_floatingip_v2.app.address
  port_id     = openstack_compute_instance_v2.node["app"].network[0].port
}

# --- containers: in the region's Swift, versioned, never synced elsewhere ------------------------

resource "openstack_objectstorage_container_v1" "node" {
  for_each = local.containers

  name       = "medfed-${module.policy.country}-${var.environment}-${each.key}"
  region     = local.region
  versioning = true
  metadata   = local.metadata
}

# --- DNS (Designate) -----------------------------------------------------------------------------

resource "openstack_dns_zone_v2" "public" {
  name        = var.dns_zone
  region      = local.region
  email       = var.dns_email
  ttl         = 3600
  type        = "PRIMARY"
  description = "MedFed ${module.policy.country} ${var.environment}"
}

resource "openstack_dns_recordset_v2" "app" {
  zone_id = openstack_dns_zone_v2.public.id
  region  = local.region
  name    = "${var.app_host}."
  type    = "A"
  ttl     = 300
  records = [openstack_networking_floatingip_v2.app.address]
}
