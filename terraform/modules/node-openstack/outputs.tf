output "country" {
  description = "Country of the node."
  value       = module.policy.country
}

output "app_public_ip" {
  description = "Public address of the app VM."
  value       = openstack_networking_floatingip_v2.app.address
}

output "private_ips" {
  description = "Private addresses by host, for the Ansible inventory."
  value       = { for k, vm in openstack_compute_instance_v2.node : k => vm.access_ip_v4 }
}

output "containers" {
  description = "Object store container names by purpose."
  value       = { for k, c in openstack_objectstorage_container_v1.node : k => c.name }
}

output "object_store_endpoint" {
  description = "The in-country object store endpoint."
  value       = var.object_store_endpoint
}
