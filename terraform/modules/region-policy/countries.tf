# The country table: the one place that says what "in-country" means for the infrastructure.
# tests/infra/ reads this same file, so the Terraform checks and the pytest checks cannot drift apart.
#
# zones         - availability zones a node's VMs, disks and networks may use
# backup_zones  - availability zones backup copies (backup VM and its volume) may use
# regions       - cloud / S3 region names (provider region, state backend region)
# host_suffixes - every endpoint (cloud API, object store, state backend, log sink, DNS) must be one
#                 of these hosts or end in "." + one of them
locals {
  countries = {
    ru = {
      name          = "Russia"
      zones         = ["ru-central1-a", "ru-central1-b", "ru-central1-d"]
      backup_zones  = ["ru-central1-a", "ru-central1-b", "ru-central1-d"]
      regions       = ["ru-central1"]
      host_suffixes = ["cloud.yandex.net", "yandexcloud.net", "medfed.ru"]
    }
    kz = {
      name          = "Kazakhstan"
      zones         = ["kz1-a", "kz-ala-1a", "kz-ala-1b", "kz-ast-1a"]
      backup_zones  = ["kz1-a", "kz-ala-1a", "kz-ala-1b", "kz-ast-1a"]
      regions       = ["kz1", "kz-ala"]
      host_suffixes = ["yandexcloud.kz", "ps.kz", "medfed.kz"]
    }
    uz = {
      name          = "Uzbekistan"
      zones         = ["uz-tas-1a", "uz-tas-1b", "uz-sam-1a"]
      backup_zones  = ["uz-tas-1a", "uz-tas-1b", "uz-sam-1a"]
      regions       = ["uz-tas"]
      host_suffixes = ["uzcloud.uz", "medfed.uz"]
    }
  }
}
