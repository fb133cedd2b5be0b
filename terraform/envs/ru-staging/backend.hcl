# State of ru-staging: in ru, in the ru state bucket.
bucket                      = "medfed-ru-tfstate"
key                         = "staging/terraform.tfstate"
region                      = "ru-central1"
endpoints                   = { s3 = "https://storage.yandexcloud.net" }
skip_credentials_validation = true
skip_region_validation      = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_s3_checksum            = true
