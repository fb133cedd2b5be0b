# State of kz-staging: in kz, in the kz state bucket.
bucket                      = "medfed-kz-tfstate"
key                         = "staging/terraform.tfstate"
region                      = "kz1"
endpoints                   = { s3 = "https://storage.yandexcloud.kz" }
skip_credentials_validation = true
skip_region_validation      = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_s3_checksum            = true
