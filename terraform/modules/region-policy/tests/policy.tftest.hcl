# Offline: the module has no providers, so `terraform init && terraform test` needs no registry.

variables {
  country                = "ru"
  zones                  = ["ru-central1-a", "ru-central1-b"]
  backup_zones           = ["ru-central1-d"]
  region                 = "ru-central1"
  endpoint_hosts         = { api = "api.cloud.yandex.net:443", s3 = "https://storage.yandexcloud.net", app = "ru.medfed.ru" }
  state_backend_endpoint = "https://storage.yandexcloud.net"
  log_sink_host          = "logs.medfed.ru"
}

run "ru_good" {
  command = plan

  assert {
    condition     = output.endpoint_hosts["s3"] == "storage.yandexcloud.net"
    error_message = "the s3 endpoint host was not extracted from its URL"
  }
}

run "ru_zone_in_kazakhstan" {
  command = plan
  variables {
    zones = ["ru-central1-a", "kz1-a"]
  }
  expect_failures = [output.zones]
}

run "ru_log_sink_abroad" {
  command = plan
  variables {
    log_sink_host = "logs.medfed.kz"
  }
  expect_failures = [output.log_sink_host]
}

run "kz_good_openstack" {
  command = plan
  variables {
    country                = "kz"
    zones                  = ["kz-ala-1a", "kz-ala-1b"]
    backup_zones           = ["kz-ast-1a"]
    region                 = "kz-ala"
    endpoint_hosts         = { auth = "https://auth.ps.kz:5000/v3", app = "kz.medfed.kz" }
    state_backend_endpoint = "https://storage.yandexcloud.kz"
    log_sink_host          = "logs.medfed.kz"
  }
}

run "kz_good_yandex_kz_installation" {
  command = plan
  variables {
    country                = "kz"
    zones                  = ["kz1-a"]
    backup_zones           = ["kz1-a"]
    region                 = "kz1"
    endpoint_hosts         = { api = "api.yandexcloud.kz:443", s3 = "https://storage.yandexcloud.kz" }
    state_backend_endpoint = "https://storage.yandexcloud.kz"
    log_sink_host          = "logs.medfed.kz"
  }
}

run "kz_endpoint_on_russian_host" {
  command = plan
  variables {
    country                = "kz"
    zones                  = ["kz1-a"]
    backup_zones           = ["kz1-a"]
    region                 = "kz1"
    endpoint_hosts         = { api = "api.yandexcloud.kz:443", s3 = "https://storage.yandexcloud.net" }
    state_backend_endpoint = "https://storage.yandexcloud.kz"
    log_sink_host          = "logs.medfed.kz"
  }
  expect_failures = [output.endpoint_hosts]
}

run "kz_state_backend_in_russia" {
  command = plan
  variables {
    country                = "kz"
    zones                  = ["kz1-a"]
    backup_zones           = ["kz1-a"]
    region                 = "kz1"
    endpoint_hosts         = { api = "api.yandexcloud.kz:443" }
    state_backend_endpoint = "https://storage.yandexcloud.net"
    log_sink_host          = "logs.medfed.kz"
  }
  expect_failures = [output.state_backend_endpoint]
}

run "uz_good" {
  command = plan
  variables {
    country                = "uz"
    zones                  = ["uz-tas-1a", "uz-tas-1b"]
    backup_zones           = ["uz-sam-1a"]
    region                 = "uz-tas"
    endpoint_hosts         = { auth = "https://auth.uzcloud.uz:5000/v3", app = "uz.medfed.uz" }
    state_backend_endpoint = "https://s3.uzcloud.uz"
    log_sink_host          = "logs.medfed.uz"
  }
}

run "uz_backup_zone_in_kazakhstan" {
  command = plan
  variables {
    country                = "uz"
    zones                  = ["uz-tas-1a"]
    backup_zones           = ["kz-ala-1a"]
    region                 = "uz-tas"
    endpoint_hosts         = { auth = "https://auth.uzcloud.uz:5000/v3" }
    state_backend_endpoint = "https://s3.uzcloud.uz"
    log_sink_host          = "logs.medfed.uz"
  }
  expect_failures = [output.backup_zones]
}

run "uz_region_in_russia" {
  command = plan
  variables {
    country                = "uz"
    zones                  = ["uz-tas-1a"]
    backup_zones           = ["uz-tas-1b"]
    region                 = "ru-central1"
    endpoint_hosts         = { auth = "https://auth.uzcloud.uz:5000/v3" }
    state_backend_endpoint = "https://s3.uzcloud.uz"
    log_sink_host          = "logs.medfed.uz"
  }
  expect_failures = [output.region]
}

run "unknown_country" {
  command = plan
  variables {
    country = "zz"
  }
  expect_failures = [var.country]
}
