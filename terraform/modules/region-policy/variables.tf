variable "country" {
  description = "Country code of the node: a folder of regions/ with an infra.json (ru, kz, uz, ...)."
  type        = string

  validation {
    condition     = contains(keys(local.countries), var.country)
    error_message = "country ${var.country} has no regions/${var.country}/infra.json; known: ${join(", ", keys(local.countries))}."
  }
}

variable "zones" {
  description = "Availability zones of the node's VMs, disks and subnets."
  type        = list(string)

  validation {
    condition     = length(var.zones) > 0
    error_message = "zones must name at least one availability zone."
  }
}

variable "backup_zones" {
  description = "Availability zones where backup copies live."
  type        = list(string)

  validation {
    condition     = length(var.backup_zones) > 0
    error_message = "backup_zones must name at least one availability zone."
  }
}

variable "region" {
  description = "Cloud region of the node (provider region)."
  type        = string
}

variable "endpoint_hosts" {
  description = "Every endpoint the node talks to or publishes, by role (cloud API, object store, DNS names...): host names or URLs."
  type        = map(string)
}

variable "state_backend_endpoint" {
  description = "Endpoint (URL or host) of the S3 backend that holds this root's state."
  type        = string
}

variable "log_sink_host" {
  description = "Host (or URL) the node ships its logs to."
  type        = string
}
