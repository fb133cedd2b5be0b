"""checkov --skip-download with MedFed's per-country rules (terraform/checkov/medfed_residency.py) over every
Terraform root and every planted violation, in one checkov run (tests/infra/checkov_scan.py).

checkov lives in its own tool virtualenv (.venv-tools, `make tools`), because its pins conflict with the
project's; without that binary these tests are skipped with the command that installs it."""

from __future__ import annotations

import pytest

from tests.infra.checkov_scan import CHECKOV_BIN, Scan, run_checkov
from tests.infra.residency import REPO, roots

PLANTED = REPO / "tests" / "infra" / "planted"
P = "tests/infra/planted"

EXPECTED: dict[str, list[str]] = {
    "backup_zone_abroad": [
        f"{P}/backup_zone_abroad/main.tf: node: kz: backup zone ru-central1-d (backup_zones) is outside Kazakhstan"
        " (allowed: kz1-a, kz-ala-1a, kz-ala-1b, kz-ast-1a) [CKV_MEDFED_1]",
    ],
    "kz_endpoint_russian_host": [
        f"{P}/kz_endpoint_russian_host/main.tf: node: kz: object_store_endpoint points to storage.yandexcloud.net, outside"
        " Kazakhstan (allowed host suffixes: yandexcloud.kz, ps.kz, medfed.kz) [CKV_MEDFED_1]",
    ],
    "bucket_replication": [
        f"{P}/bucket_replication/main.tf: yandex_storage_bucket.personal_mirror: ru: replication setting"
        " replication_configuration is forbidden: data of Russia must not be copied out [CKV_MEDFED_3]",
    ],
    "state_backend_abroad": [
        f"{P}/state_backend_abroad/main.tf: node: uz: backend.hcl: state backend host storage.yandexcloud.kz is outside"
        " Uzbekistan (allowed host suffixes: uzcloud.uz, medfed.uz) [CKV_MEDFED_6]",
        f"{P}/state_backend_abroad/main.tf: node: uz: backend.hcl: state backend region kz1 is outside Uzbekistan [CKV_MEDFED_6]",
        f"{P}/state_backend_abroad/main.tf: node: uz: state_backend_endpoint s3.uzcloud.uz differs from the backend"
        " (storage.yandexcloud.kz) [CKV_MEDFED_6]",
    ],
    "provider_unpinned": [
        f"{P}/provider_unpinned/versions.tf: openstack.default: uz: provider openstack has no pinned source in"
        " required_providers [CKV_MEDFED_5]",
    ],
    "log_sink_abroad": [
        f"{P}/log_sink_abroad/main.tf: node: ru: log_sink_host points to logs.medfed.kz, outside Russia (allowed host"
        " suffixes: cloud.yandex.net, yandexcloud.net, medfed.ru) [CKV_MEDFED_1]",
    ],
}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    if not CHECKOV_BIN.exists():
        pytest.skip(f"checkov did not run: {CHECKOV_BIN.relative_to(REPO)} is not installed (`make tools` installs it from PyPI)")
    planted = sorted(p for p in PLANTED.iterdir() if p.is_dir())
    return run_checkov(tmp_path_factory.mktemp("checkov"), roots(), planted)


def test_every_planted_fixture_has_an_expectation() -> None:
    assert {p.name for p in PLANTED.iterdir() if p.is_dir()} == set(EXPECTED)


def test_every_root_passes(scan: Scan) -> None:
    envs = [m for m in scan.messages if not m.startswith(P)]
    assert envs == [], "\n".join(envs)


def test_the_rules_ran_on_every_root(scan: Scan) -> None:
    """Not vacuous: each root's node module, provider and state backend was checked and passed."""
    for root in roots():
        rel = root.relative_to(REPO).as_posix()
        assert f"{rel}/main.tf: node" in scan.passed["CKV_MEDFED_1"], rel
        assert f"{rel}/main.tf: node" in scan.passed["CKV_MEDFED_6"], rel
        provider = "yandex.default" if root.name.startswith("ru-") else "openstack.default"
        assert f"{rel}/versions.tf: {provider}" in scan.passed["CKV_MEDFED_4"], rel
        assert f"{rel}/versions.tf: {provider}" in scan.passed["CKV_MEDFED_5"], rel
    buckets = {e for e in scan.passed["CKV_MEDFED_3"] if "yandex_storage_bucket.node" in e or "objectstorage_container" in e}
    assert buckets, "no bucket was checked for replication"


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_planted_violation_fails_checkov(case: str, scan: Scan) -> None:
    found = [m for m in scan.messages if m.startswith(f"{P}/{case}/")]
    assert found == EXPECTED[case]


def test_checks_read_the_country_table_from_regions() -> None:
    source = (REPO / "terraform" / "checkov" / "medfed_residency.py").read_text()
    assert '"regions"' in source and "infra.json" in source
    for code in ("ru", "kz", "uz"):
        assert f'"{code}"' not in source, f"the checkov rules name country {code}: the table belongs in regions/{code}/infra.json"


def test_checkov_tool_is_kept_out_of_git() -> None:
    assert ".venv-tools/" in (REPO / ".gitignore").read_text().splitlines()
