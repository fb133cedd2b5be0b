"""Each planted violation under tests/infra/planted/ makes the residency check fail, naming the file,
the resource and the country, and nothing else fails in that fixture."""

from __future__ import annotations

import pytest

from tests.infra.residency import REPO, check_root

PLANTED = "tests/infra/planted"

EXPECTED: dict[str, list[str]] = {
    "backup_zone_abroad": [
        f"{PLANTED}/backup_zone_abroad/main.tf: module.node: kz: backup zone ru-central1-d is outside Kazakhstan"
        " (allowed: kz1-a, kz-ala-1a, kz-ala-1b, kz-ast-1a)",
    ],
    "kz_endpoint_russian_host": [
        f"{PLANTED}/kz_endpoint_russian_host/main.tf: module.node: kz: object_store_endpoint points to"
        " storage.yandexcloud.net, outside Kazakhstan (allowed host suffixes: yandexcloud.kz, ps.kz, medfed.kz)",
    ],
    "bucket_replication": [
        f"{PLANTED}/bucket_replication/main.tf: yandex_storage_bucket.personal_mirror: ru: replication setting"
        " replication_configuration is forbidden: data of Russia must not be copied out",
    ],
    "state_backend_abroad": [
        f"{PLANTED}/state_backend_abroad/backend.hcl: backend.s3: uz: state backend host storage.yandexcloud.kz"
        " is outside Uzbekistan (allowed host suffixes: uzcloud.uz, medfed.uz)",
        f"{PLANTED}/state_backend_abroad/backend.hcl: backend.s3: uz: state backend region kz1 is outside Uzbekistan",
        f"{PLANTED}/state_backend_abroad/main.tf: module.node: uz: state_backend_endpoint s3.uzcloud.uz differs"
        " from backend.hcl (storage.yandexcloud.kz)",
    ],
    "provider_unpinned": [
        f"{PLANTED}/provider_unpinned/versions.tf: provider.openstack: uz: provider openstack has no pinned source in required_providers",
    ],
    "log_sink_abroad": [
        f"{PLANTED}/log_sink_abroad/main.tf: module.node: ru: log_sink_host points to logs.medfed.kz, outside"
        " Russia (allowed host suffixes: cloud.yandex.net, yandexcloud.net, medfed.ru)",
    ],
}


def test_every_planted_fixture_has_an_expectation() -> None:
    assert {p.name for p in (REPO / PLANTED).iterdir() if p.is_dir()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_planted_violation_is_reported(name: str) -> None:
    assert check_root(REPO / PLANTED / name) == EXPECTED[name]
