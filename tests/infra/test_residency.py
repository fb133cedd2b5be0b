"""Every Terraform root and node module passes the offline residency checks."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.infra.residency import (
    ENVS,
    NODE_MODULES,
    TERRAFORM,
    Country,
    check_module,
    check_root,
    host_of,
    load_countries,
    load_hcl,
    roots,
)

REGIONS = TERRAFORM.parent / "regions"


def test_every_region_has_infra_facts_with_its_own_name() -> None:
    for region_toml in REGIONS.glob("*/region.toml"):
        infra = region_toml.parent / "infra.json"
        assert infra.is_file(), f"{infra.relative_to(REGIONS.parent)} is missing"
        name = tomllib.loads(region_toml.read_text())["name"]
        assert json.loads(infra.read_text())["name"] == name, f"{infra.relative_to(REGIONS.parent)}: name differs from region.toml ({name})"


@pytest.fixture(scope="module")
def countries() -> dict[str, Country]:
    return load_countries()


def test_country_table_has_a_row_per_region(countries: dict[str, Country]) -> None:
    regions = {p.parent.name for p in REGIONS.glob("*/region.toml")}
    assert {"ru", "kz", "uz"} <= regions
    assert set(countries) == regions
    for country in countries.values():
        assert country.zones and country.backup_zones and country.regions and country.host_suffixes


def test_no_zone_or_host_suffix_is_shared_between_countries(countries: dict[str, Country]) -> None:
    seen: dict[str, str] = {}
    for country in countries.values():
        for item in (*country.zones, *country.backup_zones, *country.regions, *country.host_suffixes):
            assert seen.setdefault(item, country.code) == country.code, f"{item} is in {seen[item]} and {country.code}"


def test_every_country_has_a_prod_root_and_every_root_a_country(countries: dict[str, Country]) -> None:
    names = {p.name for p in roots()}
    assert {f"{c}-prod" for c in countries} <= names
    for name in names:
        code, _, env = name.partition("-")
        assert code in countries and env in ("prod", "staging"), f"terraform/envs/{name} is not <country>-<prod|staging>"


@pytest.mark.parametrize("root", roots(), ids=lambda p: p.name)
def test_root_is_in_country(root: Path, countries: dict[str, Country]) -> None:
    assert check_root(root, countries) == []


@pytest.mark.parametrize("root", roots(), ids=lambda p: p.name)
def test_root_has_partial_s3_backend_and_pinned_providers(root: Path) -> None:
    versions = load_hcl(root / "versions.tf")
    (terraform,) = versions["terraform"]
    assert terraform["backend"] == [{"s3": {}}], "the backend block stays partial: settings live in backend.hcl"
    (providers,) = terraform["required_providers"]
    assert providers, "a root names its providers"
    for spec in providers.values():
        assert "/" in spec["source"] and spec["version"].startswith("~>")


@pytest.mark.parametrize("root", roots(), ids=lambda p: p.name)
def test_root_uses_the_node_module_for_its_cloud(root: Path) -> None:
    (module,) = load_hcl(root / "main.tf")["module"]
    node = module["node"]
    expected = "node-yandex" if node["country"] == "ru" else "node-openstack"
    assert node["source"] == f"../../modules/{expected}"
    assert host_of(node["state_backend_endpoint"]) in (root / "backend.hcl").read_text()


@pytest.mark.parametrize("module", NODE_MODULES)
def test_node_module_checks_its_inputs_and_never_replicates(module: str) -> None:
    assert check_module(TERRAFORM / "modules" / module) == []


def test_region_policy_module_is_provider_free() -> None:
    for path in (TERRAFORM / "modules" / "region-policy").glob("*.tf"):
        data = load_hcl(path)
        assert "resource" not in data and "provider" not in data and "data" not in data, path.name
        for block in data.get("terraform", []):
            assert "required_providers" not in block, path.name


def test_envs_folder_holds_only_roots() -> None:
    assert all(p.is_dir() for p in ENVS.iterdir())
