"""Checkov rules for MedFed's residency: nothing a Terraform root creates or points to is outside its country.

Run over the roots (docs/ops/terraform.md, "checkov"):

    cd terraform/envs && checkov -d . --framework terraform --skip-download \
        --external-checks-dir ../checkov --check CKV_MEDFED_1,CKV_MEDFED_2,CKV_MEDFED_3,CKV_MEDFED_4,CKV_MEDFED_5,CKV_MEDFED_6

The country table is regions/<code>/infra.json (name, zones, backup_zones, regions, host_suffixes): the
files terraform/modules/region-policy, tests/infra and ansible/roles/residency_guard read too. Every
failure carries one detail line starting with the country: ``kz: backup zone ru-central1-d is outside
Kazakhstan (allowed: ...)``.

The country of an entity is, in order: its own ``country`` argument (the node module call), its rendered
``labels``/``metadata``/``tags`` ``country`` (the node modules label everything they create), or the
country of the root it is declared in (the ``country`` of that root's module calls). Files of a root are
found from checkov's scanned path, relative to the folder given to ``-d``: run checkov from that folder
(``-d .``) or set MEDFED_CHECKOV_BASE to it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.module.base_module_check import BaseModuleCheck
from checkov.terraform.checks.provider.base_check import BaseProviderCheck
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

REGIONS_DIR = Path(os.environ.get("MEDFED_REGIONS_DIR") or Path(__file__).resolve().parents[2] / "regions")
HOST = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?(?:[^@/]*@)?([^/:]+)")
PROVIDER_SOURCE = re.compile(r"^([a-z0-9.-]+/)?[a-z0-9-]+/[a-z0-9-]+$")
PINNED_VERSION = re.compile(r"~>|<|^\s*=?\s*v?\d+(\.\d+)*\s*$")
ZONE_KEYS = frozenset({"zone", "zones", "availability_zone", "zone_id"})
BACKUP_ZONE_KEYS = frozenset({"backup_zones", "backup_zone"})
REGION_KEYS = frozenset({"region", "region_id"})
ENDPOINT_KEYS = frozenset({"endpoint", "storage_endpoint", "auth_url", "dns_zone", "endpoints"})
ENDPOINT_SUFFIXES = ("_endpoint", "_host", "_url")
# Settings that copy a bucket's or a database's data somewhere else: never allowed at all.
REPLICATION_KEYS = frozenset(
    {"replication_configuration", "replication", "replication_rule", "replication_source", "container_sync_to", "container_sync_key"}
)
IGNORED_KEYS = frozenset({"__start_line__", "__end_line__", "__address__", "__resolved__", "count", "for_each", "depends_on", "source"})


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    zones: tuple[str, ...]
    backup_zones: tuple[str, ...]
    regions: tuple[str, ...]
    host_suffixes: tuple[str, ...]

    def allows_host(self, value: str) -> bool:
        host = host_of(value)
        return any(host == s or host.endswith("." + s) for s in self.host_suffixes)

    @property
    def suffixes(self) -> str:
        return ", ".join(self.host_suffixes)


@functools.cache
def countries() -> dict[str, Country]:
    table: dict[str, Country] = {}
    for path in sorted(REGIONS_DIR.glob("*/infra.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        table[path.parent.name] = Country(
            code=path.parent.name,
            name=row["name"],
            zones=tuple(row["zones"]),
            backup_zones=tuple(row["backup_zones"]),
            regions=tuple(row["regions"]),
            host_suffixes=tuple(row["host_suffixes"]),
        )
    return table


def host_of(value: str) -> str:
    match = HOST.match(value.strip())
    return (match.group(1) if match else value).lower().rstrip(".")


def unwrap(value: Any) -> Any:
    """Checkov and bc-python-hcl2 wrap attribute values in one-element lists."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def literal(value: Any) -> str | None:
    """A plain string value; None for anything still an expression (var.x, ${...}, each.value)."""
    value = unwrap(value)
    if not isinstance(value, str) or "${" in value or re.match(r"^(var|local|module|each|count|data)\.", value):
        return None
    return value


def strings(value: Any) -> list[str]:
    value = unwrap(value)
    items = value if isinstance(value, list) else [value]
    return [s for item in items if (s := literal(item)) is not None]


def walk(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """Every (key, dotted path, value) at any depth of nested blocks and maps."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in IGNORED_KEYS:
                continue
            here = f"{path}.{key}" if path else str(key)
            found.append((str(key), here, sub))
            found.extend(walk(sub, here))
    elif isinstance(value, list):
        for sub in value:
            found.extend(walk(sub, path))
    return found


def is_endpoint_key(key: str) -> bool:
    return key in ENDPOINT_KEYS or key.endswith(ENDPOINT_SUFFIXES)


# -- roots ---------------------------------------------------------------------------------------------


def scanned_path(entity_path: str) -> Path:
    """The file of `entity_path` (`/<file relative to -d>:<type>:<name>`) on disk."""
    relative = entity_path.split(":", 1)[0].lstrip("/")
    base = Path(os.environ.get("MEDFED_CHECKOV_BASE") or Path.cwd())
    return (base / relative).resolve()


@functools.cache
def load_hcl(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = hcl2.loads(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - unreadable, or one of the many lark errors of bc-python-hcl2: no data
        return {}
    return data


def root_files(root: Path) -> dict[Path, dict[str, Any]]:
    return {path: load_hcl(path) for path in sorted(root.glob("*.tf"))}


def is_root(folder: Path) -> bool:
    """A root has its state backend: a backend.hcl, or a `backend` block in its terraform block."""
    if (folder / "backend.hcl").is_file():
        return True
    return any(block.get("backend") for data in root_files(folder).values() for block in data.get("terraform", []))


def root_country(root: Path) -> str | None:
    """The `country` of the module calls of a root folder."""
    for data in root_files(root).values():
        for block in data.get("module", []):
            for body in block.values():
                code = literal(body.get("country"))
                if code:
                    return code
    return None


def entity_country(conf: dict[str, Any], entity_path: str) -> str | None:
    code = literal(conf.get("country"))
    if code:
        return code
    for key in ("labels", "metadata", "tags"):
        tags = unwrap(conf.get(key))
        if isinstance(tags, dict) and (code := literal(tags.get("country"))):
            return code
    return root_country(scanned_path(entity_path).parent)


class MedfedCheck:
    """Shared by the checks: the entity's country and a failure with one detail line per problem."""

    id: str
    entity_path: str
    details: list[str]

    def country_for(self, conf: dict[str, Any]) -> Country | str | None:
        """The Country; the failure detail when there is none in a root; None inside a module (checked at its call)."""
        code = entity_country(conf, self.entity_path)
        if code is None and not is_root(scanned_path(self.entity_path).parent):
            return None
        if code is None:
            return f"?: no country: no `country` argument, no country label, no root module with `country` ({self.entity_path})"
        table = countries()
        if code not in table:
            return f"{code}: has no regions/{code}/infra.json (known: {', '.join(table)})"
        return table[code]

    def in_country(self, conf: dict[str, Any]) -> CheckResult:
        """Every zone, region and endpoint of the entity in its country (unknown when it has none)."""
        country = self.country_for(conf)
        if country is None:
            return CheckResult.UNKNOWN
        if isinstance(country, str):
            return self.verdict([country])
        return self.verdict(self.value_problems(country, conf))

    def verdict(self, problems: list[str]) -> CheckResult:
        self.details.extend(problems)
        return CheckResult.FAILED if problems else CheckResult.PASSED

    @staticmethod
    def value_problems(country: Country, body: dict[str, Any]) -> list[str]:
        """Zones, backup zones, regions and endpoint hosts of one entity against its country."""
        c = country
        problems: list[str] = []
        for key, where, value in walk(body):
            if key in BACKUP_ZONE_KEYS:
                for zone in strings(value):
                    if zone not in c.backup_zones:
                        problems.append(
                            f"{c.code}: backup zone {zone} ({where}) is outside {c.name} (allowed: {', '.join(c.backup_zones)})"
                        )
            elif key in ZONE_KEYS:
                for zone in strings(value):
                    if zone.endswith("."):  # a DNS zone (yandex_dns_zone.zone): a host name, not an availability zone
                        if not c.allows_host(zone):
                            problems.append(f"{c.code}: {where} {zone} is outside {c.name} (allowed host suffixes: {c.suffixes})")
                    elif zone not in c.zones:
                        problems.append(f"{c.code}: zone {zone} ({where}) is outside {c.name} (allowed: {', '.join(c.zones)})")
            elif key in REGION_KEYS:
                for region in strings(value):
                    if region not in c.regions:
                        problems.append(f"{c.code}: region {region} ({where}) is outside {c.name} (allowed: {', '.join(c.regions)})")
            elif is_endpoint_key(key) and not isinstance(unwrap(value), dict):
                for endpoint in strings(value):
                    if not c.allows_host(endpoint):
                        problems.append(
                            f"{c.code}: {where} points to {host_of(endpoint)}, outside {c.name} (allowed host suffixes: {c.suffixes})"
                        )
        return problems


# -- checks ----------------------------------------------------------------------------------------------


class NodeModuleInCountry(MedfedCheck, BaseModuleCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: a node module's zones, backup zones, region, endpoints, state backend and log sink are in its country",
            id="CKV_MEDFED_1",
            categories=[CheckCategories.GENERAL_SECURITY],
        )

    def scan_module_conf(self, conf: dict[str, Any]) -> CheckResult:
        # The node modules' own call of region-policy repeats the inputs checked here at the node module's call.
        if literal(conf.get("country")) is None or (literal(conf.get("source")) or "").endswith("/region-policy"):
            return CheckResult.UNKNOWN
        return self.in_country(conf)


class ResourceInCountry(MedfedCheck, BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: a resource's zones, regions and endpoints are in its country",
            id="CKV_MEDFED_2",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["*"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        return self.in_country(conf)


class NoReplication(MedfedCheck, BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: no bucket or database replicates its data anywhere",
            id="CKV_MEDFED_3",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["*"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        keys = sorted({key for key, _, _ in walk(conf) if key in REPLICATION_KEYS})
        if not keys:
            return CheckResult.PASSED
        country = self.country_for(conf)
        code, name = (country.code, country.name) if isinstance(country, Country) else ("?", "its country")
        if country is None:
            code = "all"
        return self.verdict([f"{code}: replication setting {key} is forbidden: data of {name} must not be copied out" for key in keys])


class ProviderInCountry(MedfedCheck, BaseProviderCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: a provider's region, zone and API endpoints are in the root's country",
            id="CKV_MEDFED_4",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_provider=["*"],
        )

    def scan_provider_conf(self, conf: dict[str, Any]) -> CheckResult:
        return self.in_country(conf)


class ProviderPinned(MedfedCheck, BaseProviderCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: every provider of a root has a pinned source and version in required_providers",
            id="CKV_MEDFED_5",
            categories=[CheckCategories.SUPPLY_CHAIN],
            supported_provider=["*"],
        )

    def scan_provider_conf(self, conf: dict[str, Any]) -> CheckResult:
        name = self.entity_path.rsplit(":", 1)[-1]
        country = self.country_for(conf)
        code = country.code if isinstance(country, Country) else "?"
        specs: dict[str, Any] = {}
        for data in root_files(scanned_path(self.entity_path).parent).values():
            for block in data.get("terraform", []):
                for providers in block.get("required_providers", []):
                    specs.update({k: unwrap(v) for k, v in providers.items()})
        spec = specs.get(name)
        if not isinstance(spec, dict) or not spec.get("source"):
            return self.verdict([f"{code}: provider {name} has no pinned source in required_providers"])
        problems = []
        if not PROVIDER_SOURCE.match(spec["source"]):
            problems.append(f"{code}: provider {name} source {spec['source']!r} is not namespace/type")
        version = spec.get("version")
        if not version:
            problems.append(f"{code}: provider {name} has no version constraint")
        elif not PINNED_VERSION.search(version):
            problems.append(f"{code}: provider {name} version {version!r} has no upper bound (use ~>)")
        return self.verdict(problems)


class StateBackendInCountry(MedfedCheck, BaseModuleCheck):
    def __init__(self) -> None:
        super().__init__(
            name="MedFed: the root's state backend (backend block and backend.hcl) is in the node's country",
            id="CKV_MEDFED_6",
            categories=[CheckCategories.GENERAL_SECURITY],
        )

    def scan_module_conf(self, conf: dict[str, Any]) -> CheckResult:
        if literal(conf.get("country")) is None or not literal(conf.get("state_backend_endpoint")):
            return CheckResult.UNKNOWN
        root = scanned_path(self.entity_path).parent
        country = self.country_for(conf)
        if country is None or not is_root(root):
            return CheckResult.UNKNOWN
        if isinstance(country, str):
            return self.verdict([country])
        problems: list[str] = []
        settings: list[tuple[str, dict[str, Any]]] = []
        for path, data in root_files(root).items():
            for block in data.get("terraform", []):
                for backend in block.get("backend", []):
                    for kind, body in backend.items():
                        if kind != "s3":
                            problems.append(f"{country.code}: {path.name}: backend {kind}: the state must be in the country's S3")
                        settings.append((path.name, body))
        backend_file = root / "backend.hcl"
        if backend_file.is_file():
            settings.append((backend_file.name, load_hcl(backend_file)))
        else:
            problems.append(f"{country.code}: no backend.hcl: the state location is not fixed in-country")
        declared = host_of(literal(conf["state_backend_endpoint"]) or "")
        return self.verdict(problems + self.backend_problems(country, settings, declared))

    @staticmethod
    def backend_problems(c: Country, settings: list[tuple[str, dict[str, Any]]], declared: str) -> list[str]:
        problems: list[str] = []
        hosts: list[str] = []
        for name, body in settings:
            endpoints = unwrap(body.get("endpoints"))
            values = [unwrap(endpoints.get("s3"))] if isinstance(endpoints, dict) else []
            values.append(unwrap(body.get("endpoint")))
            for value in filter(None, values):
                hosts.append(host_of(value))
                if not c.allows_host(value):
                    problems.append(
                        f"{c.code}: {name}: state backend host {host_of(value)} is outside {c.name} (allowed host suffixes: {c.suffixes})"
                    )
            region = literal(body.get("region"))
            if region and region not in c.regions:
                problems.append(f"{c.code}: {name}: state backend region {region} is outside {c.name}")
            bucket = literal(body.get("bucket"))
            if bucket and not bucket.startswith(f"medfed-{c.code}-"):
                problems.append(f"{c.code}: {name}: state bucket {bucket} is not a medfed-{c.code}- bucket")
        if settings and not hosts:
            problems.append(f"{c.code}: no endpoints.s3 for the state backend: the default would be AWS, abroad")
        if hosts and declared not in hosts:
            problems.append(f"{c.code}: state_backend_endpoint {declared} differs from the backend ({', '.join(hosts)})")
        return problems


NodeModuleInCountry()
ResourceInCountry()
NoReplication()
ProviderInCountry()
ProviderPinned()
StateBackendInCountry()
