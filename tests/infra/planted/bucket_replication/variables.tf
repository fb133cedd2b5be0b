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

variable "cloud_id" {
  description = "Yandex Cloud id."
  type        = string
}

variable "folder_id" {
  description = "Yandex Cloud folder of this environment."
  type        = string
}
