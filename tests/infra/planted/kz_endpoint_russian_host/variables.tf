variable "image_id" {
  description = "Boot image of every VM."
  type        = string
}

variable "ssh_public_key" {
  description = "Public key of the deploy user."
  type        = string
}

variable "admin_cidrs" {
  description = "CIDR blocks allowed to reach SSH."
  type        = list(string)
}

variable "external_network_id" {
  description = "The cloud's external network."
  type        = string
}

variable "floating_ip_pool" {
  description = "Pool of the app's floating IP."
  type        = string
}
