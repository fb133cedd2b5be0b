"""Data-subject request deadlines in working days with each country's holidays (the `holidays` package)."""

from __future__ import annotations

import datetime
import re

import pytest

from medplat.compliance.deadlines import RULES, add_days, due_on, extended_due_on, is_working_day, working_days_between
from medplat.db.models import all_mappers
from medplat.residency import check_processing
from medplat.storage import CASE_PHOTOS, CONTENT_MEDIA, DIPLOMA_SCANS, PREFIXES, RECEIVED_MEDIA, UnsafeKeyError
from medsync.inbound import _blob_key


def test_russian_new_year_holidays_push_the_deadline() -> None:
    # Received Monday 29 Dec 2025 in Moscow: 30 Dec works, 31 Dec and 1-11 Jan are days off, then 12 Jan on.
    received = datetime.datetime(2025, 12, 29, 9, tzinfo=datetime.UTC)
    assert not is_working_day("RU", datetime.date(2026, 1, 9)) and is_working_day("RU", datetime.date(2026, 1, 12))
    assert due_on("RU", "access", received, "Europe/Moscow") == datetime.date(2026, 1, 22)
    assert extended_due_on("RU", "access", datetime.date(2026, 1, 22)) == datetime.date(2026, 1, 29)
    assert extended_due_on("RU", "erasure", datetime.date(2026, 1, 22)) is None
    assert due_on("RU", "erasure", received, "Europe/Moscow") == datetime.date(2026, 1, 19)


def test_kazakh_nauryz_and_weekends_count_as_days_off() -> None:
    # Thursday 19 March 2026: 20 March works; Nauryz 21-23 March falls partly on the weekend and is moved to 24-25
    # March; so the three working days are 20, 26 and 27 March.
    received = datetime.datetime(2026, 3, 19, 6, tzinfo=datetime.UTC)
    assert due_on("KZ", "access", received, "Asia/Almaty") == datetime.date(2026, 3, 27)
    assert working_days_between("KZ", datetime.date(2026, 3, 19), datetime.date(2026, 3, 27)) == 3


def test_the_local_date_decides_the_day_of_receipt() -> None:
    # 20:00 UTC on a Friday is already Saturday in Tashkent: counting starts after Saturday, not Friday.
    friday_evening = datetime.datetime(2026, 2, 6, 20, tzinfo=datetime.UTC)
    assert due_on("UZ", "access", friday_evening, "Asia/Tashkent") == add_days("UZ", datetime.date(2026, 2, 7), 10, "working")


@pytest.mark.parametrize("country", ["RU", "KZ", "UZ"])
def test_every_country_has_a_rule_per_kind_with_its_source(country: str) -> None:
    for kind in ("access", "rectification", "erasure"):
        rule = RULES[country, kind]
        assert rule.days > 0 and rule.source


def test_every_model_declares_legal_basis_and_retention() -> None:
    assert check_processing(all_mappers()) == []


def test_key_prefixes_are_declared_and_the_writers_keys_fit_them() -> None:
    assert set(PREFIXES) == {"diploma_scans", "case_photos", "content_media", "received_media"}
    case = "01a200fe-5d6f-767c-a304-be0f50a7c7c8"
    assert CASE_PHOTOS.key("01a200fe-5d6f-767c-a304-be0f50a7c7c7", case, "before-" + "ab" * 32).startswith("cases/")
    with pytest.raises(UnsafeKeyError):
        CASE_PHOTOS.key("01a200fe-5d6f-767c-a304-be0f50a7c7c7", case, "during-" + "ab" * 32)
    sha = "ab" * 32
    assert RECEIVED_MEDIA.matches(_blob_key("ru", sha))  # medsync writes received blobs under its own rule
    assert DIPLOMA_SCANS.key("01a200fe-5d6f-767c-a304-be0f50a7c7c7", sha) == f"diplomas/01a200fe-5d6f-767c-a304-be0f50a7c7c7_{sha}"
    with pytest.raises(UnsafeKeyError):
        CONTENT_MEDIA.key("not-a-uuid", sha)


def test_keys_of_the_folder_per_owner_layout_are_still_recognised_but_never_written() -> None:
    doctor, case, sha = "01a200fe-5d6f-767c-a304-be0f50a7c7c7", "01a200fe-5d6f-767c-a304-be0f50a7c7c8", "ab" * 32
    legacy = {
        DIPLOMA_SCANS: f"diplomas/{doctor}/{sha}", CONTENT_MEDIA: f"media/{case}/{sha}", CASE_PHOTOS: f"cases/{doctor}/{case}/after-{sha}",
    }  # fmt: skip
    for prefix, key in legacy.items():
        assert prefix.matches(key) and not re.fullmatch(prefix.pattern, key)
        assert [p.name for p in PREFIXES.values() if p.matches(key)] == [prefix.name]
    assert CASE_PHOTOS.key(doctor, case, f"after-{sha}") == f"cases/{doctor}_{case}_after-{sha}"
    # Erasure lists a doctor's objects under both layouts, and under nobody else's id.
    assert DIPLOMA_SCANS.owned_by(doctor) == (f"diplomas/{doctor}_", f"diplomas/{doctor}/")
    assert CASE_PHOTOS.owned_by(doctor) == (f"cases/{doctor}_", f"cases/{doctor}/")
    assert RECEIVED_MEDIA.owned_by("ru") == ("received/ru/",)
    other = "01a200fe-5d6f-767c-a304-be0f50a7c7c9"
    assert DIPLOMA_SCANS.key(doctor, sha).startswith(DIPLOMA_SCANS.owned_by(doctor)[0])
    assert not DIPLOMA_SCANS.key(other, sha).startswith(DIPLOMA_SCANS.owned_by(doctor))
    near_misses = (
        f"diplomas/{doctor}-{sha}", f"diplomas/{doctor}_{sha}/x", f"cases/{doctor}_{case}/after-{sha}", f"media/{doctor}_{sha}.png",
    )  # fmt: skip
    for key in near_misses:
        assert not any(p.matches(key) for p in PREFIXES.values()), key
