variable "country" {
  description = "Country code (ru, or kz for Yandex Cloud's Kazakhstan installation)."
  type        = string
}

variable "environment" {
  description = "prod or staging."
  type        = string
}

variable "region" {
  description = "Yandex Cloud region: ru-central1 or kz1."
  type        = string
}

variable "zones" {
  description = "Zones for the node's subnets and VMs; the first zone holds the database and object store VMs."
  type        = list(string)
}

variable "backup_zones" {
  description = "Zones for the backup VM and its disk."
  type        = list(string)
}

variable "api_endpoint" {
  description = "Yandex Cloud API endpoint the provider uses (api.cloud.yandex.net:443, api.yandexcloud.kz:443)."
  type        = string
}

variable "storage_endpoint" {
  description = "Yandex Object Storage endpoint (https://storage.yandexcloud.net, https://storage.yandexcloud.kz)."
  type        = string
}

variable "dns_zone" {
  description = "Public DNS zone of the node, with the trailing dot (medfed.ru.)."
  type        = string
}

variable "app_host" {
  description = "Public host name of the node (ru.medfed.ru)."
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

variable "ssh_public_key" {
  description = "Public key for the deploy user (Ansible)."
  type        = string
}

variable "admin_cidrs" {
  description = "CIDR blocks allowed to reach SSH on the VMs."
  type        = list(string)
}

variable "subnet_cidrs" {
  description = "One private CIDR per zone, in the order of var.zones."
  type        = list(string)
  default     = ["10.20.1.0/24", "10.20.2.0/24", "10.20.3.0/24"]
}

variable "worker_count" {
  description = "Number of Celery worker VMs."
  type        = number
  default     = 2
}

variable "platform_id" {
  description = "Yandex Compute platform."
  type        = string
  default     = "standard-v3"
}

variable "sizes" {
  description = "cores, memory (GB) and data disk (GB) per role."
  type        = map(object({ cores = number, memory = number, disk = number }))
  default = {
    app    = { cores = 2, memory = 4, disk = 20 }
    worker = { cores = 2, memory = 4, disk = 20 }
    db     = { cores = 4, memory = 16, disk = 200 }
    store  = { cores = 2, memory = 4, disk = 500 }
    backup = { cores = 2, memory = 4, disk = 500 }
  }
}
