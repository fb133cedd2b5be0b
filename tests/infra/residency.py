"""Offline residency checks over Terraform roots, with python-hcl2.

The country table is read from regions/<code>/infra.json, the same files the region-policy module reads
at plan time (and the checkov rules and the Ansible residency guard), so every check says the same thing. Every violation is one
line: ``<file>: <resource>: <country>: <what is wrong>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
REGIONS = REPO / "regions"
ENVS = TERRAFORM / "envs"
NODE_MODULES = ("node-yandex", "node-openstack")

# Settings that copy a bucket's or a database's data somewhere else: never allowed at all.
REPLICATION_KEYS = frozenset(
    {
        "replication_configuration",
        "replication",
        "replication_rule",
        "replication_source",
        "container_sync_to",
        "container_sync_key",
    }
)
ENDPOINT_KEYS = frozenset({"endpoint", "storage_endpoint", "auth_url", "dns_zone"})
ENDPOINT_SUFFIXES = ("_endpoint", "_host", "_url")
REGION_KEYS = frozenset({"region", "region_id"})
PINNED_VERSION = re.compile(r"~>|<|^\s*=?\s*v?\d+(\.\d+)*\s*$")
PROVIDER_SOURCE = re.compile(r"^([a-z0-9.-]+/)?[a-z0-9-]+/[a-z0-9-]+$")
HOST = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?([^/:]+)")


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


def clean(value: Any) -> Any:
    """python-hcl2 output without quotes around strings and labels, and without block markers."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = clean(hcl2.load(f))
    return data


def host_of(value: str) -> str:
    match = HOST.match(value.strip())
    return (match.group(1) if match else value).lower().rstrip(".")


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def load_countries(regions: Path = REGIONS) -> dict[str, Country]:
    """One row per regions/<code>/infra.json."""
    rows = {path.parent.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(regions.glob("*/infra.json"))}
    return {
        code: Country(
            code=code,
            name=row["name"],
            zones=tuple(row["zones"]),
            backup_zones=tuple(row["backup_zones"]),
            regions=tuple(row["regions"]),
            host_suffixes=tuple(row["host_suffixes"]),
        )
        for code, row in rows.items()
    }


def _labelled(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """[{"name": {...}}] -> [("name", {...})]"""
    return [(name, body) for block in blocks for name, body in block.items()]


def _walk_keys(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair at any depth of nested blocks."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            found.append((key, sub))
            found.extend(_walk_keys(sub))
    elif isinstance(value, list):
        for sub in value:
            found.extend(_walk_keys(sub))
    return found


def _is_endpoint_key(key: str) -> bool:
    return key in ENDPOINT_KEYS or key.endswith(ENDPOINT_SUFFIXES)


class RootCheck:
    """Collects the violations of one Terraform root (a folder of *.tf plus its backend.hcl)."""

    def __init__(self, root: Path, countries: dict[str, Country]) -> None:
        self.root = root
        self.countries = countries
        self.violations: list[str] = []
        self.files = {p: load_hcl(p) for p in sorted(root.glob("*.tf"))}
        self.country = self._country()

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(REPO).as_posix()
        except ValueError:
            return path.as_posix()

    def fail(self, path: Path, resource: str, what: str) -> None:
        code = self.country.code if self.country else "?"
        self.violations.append(f"{self.rel(path)}: {resource}: {code}: {what}")

    def _country(self) -> Country | None:
        for data in self.files.values():
            for _, body in _labelled(data.get("module", [])):
                code = body.get("country")
                if isinstance(code, str) and code in self.countries:
                    return self.countries[code]
        return None

    # -- checks ---------------------------------------------------------------------------------

    def run(self) -> list[str]:
        if self.country is None:
            self.fail(self.root, "module", "no module sets a known country (one of " + ", ".join(self.countries) + ")")
            return self.violations
        prefix = self.root.name.split("-")[0]
        if self.root.parent.name == "envs" and prefix != self.country.code:
            self.fail(self.root, "module.node", f"root {self.root.name} is not named after its country")
        for path, data in self.files.items():
            self._check_terraform_blocks(path, data)
            self._check_providers(path, data)
            for name, body in _labelled(data.get("module", [])):
                self._check_values(path, f"module.{name}", body)
            for rtype, named in _labelled(data.get("resource", [])):
                for name, body in named.items():
                    self._check_values(path, f"{rtype}.{name}", body)
                    self._check_replication(path, f"{rtype}.{name}", body)
            for rtype, named in _labelled(data.get("data", [])):
                for name, body in named.items():
                    self._check_values(path, f"data.{rtype}.{name}", body)
        backend_hosts = self._check_backend_file()
        self._check_state_endpoint_matches(backend_hosts)
        return self.violations

    def _check_terraform_blocks(self, path: Path, data: dict[str, Any]) -> None:
        for block in data.get("terraform", []):
            for providers in block.get("required_providers", []):
                for name, spec in providers.items():
                    self._check_provider_pin(path, name, spec)
            for kind, body in _labelled(block.get("backend", [])):
                if kind != "s3":
                    self.fail(path, f"backend.{kind}", "state backend must be s3 in the country's object storage")
                self._check_backend_settings(path, body)

    def _check_provider_pin(self, path: Path, name: str, spec: Any) -> None:
        resource = f"provider.{name}"
        if not isinstance(spec, dict) or not spec.get("source"):
            self.fail(path, resource, f"provider {name} has no pinned source in required_providers")
            return
        if not PROVIDER_SOURCE.match(spec["source"]):
            self.fail(path, resource, f"provider {name} source {spec['source']!r} is not namespace/type")
        version = spec.get("version")
        if not version:
            self.fail(path, resource, f"provider {name} has no version constraint")
        elif not PINNED_VERSION.search(version):
            self.fail(path, resource, f"provider {name} version {version!r} has no upper bound (use ~>)")

    def _declared_providers(self) -> set[str]:
        names: set[str] = set()
        for data in self.files.values():
            for block in data.get("terraform", []):
                for providers in block.get("required_providers", []):
                    names.update(providers)
        return names

    def _check_providers(self, path: Path, data: dict[str, Any]) -> None:
        declared = self._declared_providers()
        for name, body in _labelled(data.get("provider", [])):
            if name not in declared:
                self.fail(path, f"provider.{name}", f"provider {name} has no pinned source in required_providers")
            self._check_values(path, f"provider.{name}", body)

    def _check_values(self, path: Path, resource: str, body: dict[str, Any]) -> None:
        assert self.country is not None
        c = self.country
        for key, value in body.items():
            if key in ("zones", "zone", "availability_zone", "backup_zones"):
                backup = key == "backup_zones"
                allowed = c.backup_zones if backup else c.zones
                label = "backup zone" if backup else "zone"
                for zone in value if isinstance(value, list) else [value]:
                    if is_expression(zone):
                        continue
                    if zone not in allowed:
                        self.fail(path, resource, f"{label} {zone} is outside {c.name} (allowed: {', '.join(allowed)})")
            elif key in REGION_KEYS and isinstance(value, str) and not is_expression(value):
                self._check_region(path, resource, value)
            elif _is_endpoint_key(key) and isinstance(value, str) and not is_expression(value):
                self._check_host(path, resource, key, value)

    def _check_region(self, path: Path, resource: str, region: str) -> None:
        assert self.country is not None
        c = self.country
        if region not in c.regions:
            self.fail(path, resource, f"region {region} is outside {c.name} (allowed: {', '.join(c.regions)})")

    def _check_host(self, path: Path, resource: str, key: str, value: str) -> None:
        assert self.country is not None
        c = self.country
        if not c.allows_host(value):
            suffixes = ", ".join(c.host_suffixes)
            self.fail(path, resource, f"{key} points to {host_of(value)}, outside {c.name} (allowed host suffixes: {suffixes})")

    def _check_replication(self, path: Path, resource: str, body: dict[str, Any]) -> None:
        assert self.country is not None
        for key, _ in _walk_keys(body):
            if key in REPLICATION_KEYS:
                self.fail(
                    path,
                    resource,
                    f"replication setting {key} is forbidden: data of {self.country.name} must not be copied out",
                )

    def _check_backend_settings(self, path: Path, settings: dict[str, Any]) -> list[str]:
        assert self.country is not None
        c = self.country
        hosts: list[str] = []
        endpoints = settings.get("endpoints", {})
        for endpoint in [endpoints.get("s3")] if isinstance(endpoints, dict) else []:
            if endpoint:
                hosts.append(host_of(endpoint))
        if settings.get("endpoint"):
            hosts.append(host_of(settings["endpoint"]))
        for host in hosts:
            if not c.allows_host(host):
                self.fail(
                    path,
                    "backend.s3",
                    f"state backend host {host} is outside {c.name} (allowed host suffixes: {', '.join(c.host_suffixes)})",
                )
        region = settings.get("region")
        if region and region not in c.regions:
            self.fail(path, "backend.s3", f"state backend region {region} is outside {c.name}")
        bucket = settings.get("bucket")
        if bucket and not bucket.startswith(f"medfed-{c.code}-"):
            self.fail(path, "backend.s3", f"state bucket {bucket} is not a medfed-{c.code}- bucket")
        return hosts

    def _check_backend_file(self) -> list[str]:
        path = self.root / "backend.hcl"
        if not path.exists():
            self.fail(path, "backend.s3", "no backend.hcl: the state location is not fixed in-country")
            return []
        settings = load_hcl(path)
        hosts = self._check_backend_settings(path, settings)
        if not hosts:
            self.fail(path, "backend.s3", "backend.hcl sets no endpoints.s3: the default would be AWS, abroad")
        return hosts

    def _check_state_endpoint_matches(self, backend_hosts: list[str]) -> None:
        for path, data in self.files.items():
            for name, body in _labelled(data.get("module", [])):
                value = body.get("state_backend_endpoint")
                if isinstance(value, str) and backend_hosts and host_of(value) not in backend_hosts:
                    self.fail(
                        path,
                        f"module.{name}",
                        f"state_backend_endpoint {host_of(value)} differs from backend.hcl ({', '.join(backend_hosts)})",
                    )


def check_root(root: Path, countries: dict[str, Country] | None = None) -> list[str]:
    return RootCheck(root, countries or load_countries()).run()


def check_module(module: Path) -> list[str]:
    """A node module: uses region-policy, and no resource carries a replication setting."""
    violations: list[str] = []
    uses_policy = False
    for path in sorted(module.glob("*.tf")):
        rel = path.relative_to(REPO).as_posix()
        data = load_hcl(path)
        for _, body in _labelled(data.get("module", [])):
            uses_policy |= body.get("source") == "../region-policy"
        for rtype, named in _labelled(data.get("resource", [])):
            for name, body in named.items():
                for key, _ in _walk_keys(body):
                    if key in REPLICATION_KEYS:
                        violations.append(f"{rel}: {rtype}.{name}: all: replication setting {key} is forbidden")
    if not uses_policy:
        violations.append(f"{module.relative_to(REPO).as_posix()}: module.policy: all: does not use ../region-policy")
    return violations


def roots(envs: Path = ENVS) -> list[Path]:
    return sorted(p for p in envs.iterdir() if p.is_dir())
