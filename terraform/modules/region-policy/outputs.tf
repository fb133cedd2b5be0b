output "country" {
  description = "The checked country code."
  value       = var.country
}

output "zones" {
  description = "The node's zones, checked against the country table."
  value       = var.zones

  precondition {
    condition     = length(local.bad_zones) == 0
    error_message = "${var.country}: zone(s) ${join(", ", local.bad_zones)} not allowed for ${local.policy.name}; allowed: ${join(", ", local.policy.zones)}."
  }
}

output "backup_zones" {
  description = "The backup zones, checked against the country table."
  value       = var.backup_zones

  precondition {
    condition     = length(local.bad_backup_zones) == 0
    error_message = "${var.country}: backup zone(s) ${join(", ", local.bad_backup_zones)} not allowed for ${local.policy.name}; allowed: ${join(", ", local.policy.backup_zones)}."
  }
}

output "region" {
  description = "The cloud region, checked against the country table."
  value       = var.region

  precondition {
    condition     = contains(local.policy.regions, var.region)
    error_message = "${var.country}: region ${var.region} not allowed for ${local.policy.name}; allowed: ${join(", ", local.policy.regions)}."
  }
}

output "endpoint_hosts" {
  description = "Endpoint hosts by role, each checked to end in an in-country suffix."
  value       = local.endpoint_hosts

  precondition {
    condition     = length(local.bad_endpoints) == 0
    error_message = "${var.country}: endpoint(s) ${join(", ", local.bad_endpoints)} outside ${local.policy.name}; allowed host suffixes: ${join(", ", local.policy.host_suffixes)}."
  }
}

output "state_backend_endpoint" {
  description = "The state backend endpoint, checked to be in-country."
  value       = var.state_backend_endpoint

  precondition {
    condition     = local.state_ok
    error_message = "${var.country}: state backend ${local.state_host} outside ${local.policy.name}; allowed host suffixes: ${join(", ", local.policy.host_suffixes)}."
  }
}

output "log_sink_host" {
  description = "The log sink host, checked to be in-country."
  value       = local.log_sink_host

  precondition {
    condition     = local.log_ok
    error_message = "${var.country}: log sink ${local.log_sink_host} outside ${local.policy.name}; allowed host suffixes: ${join(", ", local.policy.host_suffixes)}."
  }
}

output "allowed" {
  description = "The country's row of the table (for modules that need the allowed lists)."
  value       = local.policy
}
