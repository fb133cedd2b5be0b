# Provider-free: only locals, variables and outputs with preconditions, so `terraform test`
# runs here without a registry.
locals {
  policy = local.countries[var.country]

  # "https://storage.yandexcloud.net:443/path" -> "storage.yandexcloud.net"
  endpoint_hosts = { for role, value in var.endpoint_hosts : role => lower(regex("^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?([^/:]+)", value)[0]) }
  state_host     = lower(regex("^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?([^/:]+)", var.state_backend_endpoint)[0])
  log_sink_host  = lower(regex("^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?([^/:]+)", var.log_sink_host)[0])

  bad_zones        = [for z in var.zones : z if !contains(local.policy.zones, z)]
  bad_backup_zones = [for z in var.backup_zones : z if !contains(local.policy.backup_zones, z)]
  bad_endpoints = [
    for role, host in local.endpoint_hosts : "${role}=${host}"
    if !anytrue([for s in local.policy.host_suffixes : host == s || endswith(host, ".${s}")])
  ]
  state_ok = anytrue([for s in local.policy.host_suffixes : local.state_host == s || endswith(local.state_host, ".${s}")])
  log_ok   = anytrue([for s in local.policy.host_suffixes : local.log_sink_host == s || endswith(local.log_sink_host, ".${s}")])
}
