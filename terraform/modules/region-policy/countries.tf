# The country table: one row per regions/<code>/infra.json (name, zones, backup_zones, regions,
# host_suffixes). The same files are read by tests/infra, the checkov rules (terraform/checkov) and
# ansible/roles/residency_guard, so a fourth country is a new regions/<code>/ and nothing here.
#
# zones         - availability zones a node's VMs, disks and networks may use
# backup_zones  - availability zones backup copies (backup VM and its volume) may use
# regions       - cloud / S3 region names (provider region, state backend region)
# host_suffixes - every endpoint (cloud API, object store, state backend, log sink, DNS) must be one
#                 of these hosts or end in "." + one of them
locals {
  regions_dir = "${path.module}/../../../regions"
  countries = {
    for f in fileset(local.regions_dir, "*/infra.json") : dirname(f) => {
      for k, v in jsondecode(file("${local.regions_dir}/${f}")) : k => v
      if contains(["name", "zones", "backup_zones", "regions", "host_suffixes"], k)
    }
  }
}
