# State of uz-prod: in uz, in the uz state bucket.
bucket                      = "medfed-uz-tfstate"
key                         = "prod/terraform.tfstate"
region                      = "uz-tas"
endpoints                   = { s3 = "https://s3.uzcloud.uz" }
skip_credentials_validation = true
skip_region_validation      = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_s3_checksum            = true
use_path_style              = true
