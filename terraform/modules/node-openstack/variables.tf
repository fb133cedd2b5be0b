variable "country" {
  description = "Country code (kz or uz)."
  type        = string
}

variable "environment" {
  description = "prod or staging."
  type        = string
}

variable "region" {
  description = "OpenStack region name (kz-ala, uz-tas)."
  type        = string
}

variable "zones" {
  description = "Availability zones for VMs and volumes; the first holds the database and object store VMs."
  type        = list(string)
}

variable "backup_zones" {
  description = "Availability zones for the backup VM and its volume."
  type        = list(string)
}

variable "auth_url" {
  description = "Keystone URL the provider uses (https://auth.ps.kz:5000/v3)."
  type        = string
}

variable "object_store_endpoint" {
  description = "The cloud's Swift/S3 endpoint for the node's buckets."
  type        = string
}

variable "dns_zone" {
  description = "Public DNS zone (Designate) of the node, with the trailing dot (medfed.kz.)."
  type        = string
}

variable "dns_email" {
  description = "Contact e-mail of the DNS zone."
  type        = string
}

variable "app_host" {
  description = "Public host name of the node (kz.medfed.kz)."
  type        = string
}

variable "state_backend_endpoint" {
  description = "Endpoint of the S3 backend holding this root's state (checked to be in-country)."
  type        = string
}

variable "log_sink_host" {
  description = "Host the node ships its logs to (checked to be in-country)."
  type        = string
}

variable "image_id" {
  description = "Boot image of every VM."
  type        = string
}

variable "external_network_id" {
  description = "The cloud's external (public) network."
  type        = string
}

variable "floating_ip_pool" {
  description = "Pool of the app's floating IP."
  type        = string
}

variable "encrypted_volume_type" {
  description = "Cinder volume type with an encryption spec (LUKS), used for every volume."
  type        = string
  default     = "encrypted"
}

variable "ssh_public_key" {
  description = "Public key for the deploy user (Ansible)."
  type        = string
}

variable "admin_cidrs" {
  description = "CIDR blocks allowed to reach SSH on the VMs."
  type        = list(string)
}

variable "subnet_cidr" {
  description = "The node's private subnet."
  type        = string
  default     = "10.30.0.0/22"
}

variable "worker_count" {
  description = "Number of Celery worker VMs."
  type        = number
  default     = 2
}

variable "flavors" {
  description = "Flavor per role."
  type        = map(string)
  default = {
    app    = "m1.medium"
    worker = "m1.medium"
    db     = "m1.xlarge"
    store  = "m1.medium"
    backup = "m1.medium"
  }
}

variable "disk_sizes" {
  description = "Data volume size (GB) per role."
  type        = map(number)
  default = {
    app    = 20
    db     = 200
    store  = 500
    backup = 500
  }
}
