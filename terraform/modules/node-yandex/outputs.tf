output "country" {
  description = "Country of the node."
  value       = module.policy.country
}

output "app_public_ip" {
  description = "Public address of the app VM."
  value       = yandex_vpc_address.app.external_ipv4_address[0].address
}

output "private_ips" {
  description = "Private addresses by host, for the Ansible inventory."
  value = merge(
    { app = yandex_compute_instance.app.network_interface[0].ip_address },
    { for k, vm in yandex_compute_instance.internal : k => vm.network_interface[0].ip_address },
    { for vm in yandex_compute_instance.worker : vm.hostname => vm.network_interface[0].ip_address },
  )
}

output "buckets" {
  description = "Bucket names by purpose."
  value       = { for k, b in yandex_storage_bucket.node : k => b.bucket }
}

output "storage_endpoint" {
  description = "The in-country object storage endpoint."
  value       = var.storage_endpoint
}
