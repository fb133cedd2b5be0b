"""The border check: every kind of personal data is found wherever it hides, ordinary text is not, and no
finding or error ever repeats the data it found."""

# Cyrillic and full-width text is what these tests are about.

from __future__ import annotations

import datetime
import itertools
import pickle
import string
import unicodedata
from collections.abc import Iterator
from typing import Any

import msgspec
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medsync.border import (
    _INVISIBLE,
    _NON_ASCII_DIGIT,
    Finding,
    NationalIdKind,
    PersonalDataError,
    _findings,
    _normalise,
    check_document,
    national_id_valid,
    scan_document,
    scan_text,
)
from medsync.errors import BorderError
from medsync.items import Blob, Byline, EventInfo, Lesson, SharedDocument, Text, from_builtins, to_builtins

# -- valid identifiers, computed here independently of the detector -----------------------------------


def _weighted(digits: str, weights: Iterator[int] | tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False))


def snils(number: int, style: str = "dashed") -> str:
    digits = f"{number:09d}"
    total = _weighted(digits, range(9, 0, -1))
    if total > 101:
        total %= 101
    control = 0 if total in (100, 101) else total
    if style == "plain":
        return f"{digits}{control:02d}"
    sep = "-" if style == "dashed" else " "
    return f"{digits[:3]}{sep}{digits[3:6]}{sep}{digits[6:]} {control:02d}"


def inn10(first9: str) -> str:
    return first9 + str(_weighted(first9, (2, 4, 10, 3, 5, 9, 4, 6, 8)) % 11 % 10)


def inn12(first10: str) -> str:
    eleven = first10 + str(_weighted(first10, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) % 11 % 10)
    return eleven + str(_weighted(eleven, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) % 11 % 10)


def _century_digit(year: int, female: bool) -> int:
    return {18: 1, 19: 3, 20: 5}[year // 100] + int(female)


def iin(born: datetime.date, female: bool, serial: int) -> str | None:
    """None when no IIN exists for these digits (a check digit of 10 in both passes)."""
    first11 = f"{born:%y%m%d}{_century_digit(born.year, female)}{serial:04d}"
    check = _weighted(first11, range(1, 12)) % 11
    if check == 10:
        check = _weighted(first11, (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)) % 11
        if check == 10:
            return None
    return first11 + str(check)


def pinfl(born: datetime.date, female: bool, district: int, serial: int) -> str:
    first13 = f"{_century_digit(born.year, female)}{born:%d%m%y}{district:03d}{serial:03d}"
    return first13 + str(_weighted(first13, itertools.cycle((7, 3, 1))) % 10)


def wrong_last_digit(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


# Known-good values, checked against the generators above.
SNILS = snils(112233445)  # 112-233-445 95
INN10 = inn10("770708389")  # 7707083893
INN12 = inn12("5001007322")  # 500100732259
IIN = iin(datetime.date(1990, 1, 1), False, 1)
PINFL = pinfl(datetime.date(1985, 3, 14), False, 45, 123)
assert IIN is not None


def kinds(text: str) -> set[str]:
    return {kind for kind, _ in scan_text(text)}


# -- each kind, positive and negative ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "звоните +7 916 123-45-67 после обеда",
        "8 (916) 123-45-67",
        "тел. 8 701 123 45 67 (Алматы)",
        "+7 701 123 4567",
        "+998 90 123 45 67",
        "90 123 45 67",
        "Call +44 20 7946 0958 or +1 212 555 0123",
        "telefon:+998901234567",
        "cardio-89161234567",
    ],
)
def test_phone_numbers_are_found(text: str) -> None:
    assert "phone" in kinds(text)


def test_kazakh_numbers_need_no_pass_of_their_own() -> None:
    # border.py scans with RU and UZ defaults only: KZ parses exactly like RU.
    ru = phonenumbers.PhoneMetadata.metadata_for_region("RU")
    kz = phonenumbers.PhoneMetadata.metadata_for_region("KZ")
    assert (ru.country_code, ru.national_prefix_for_parsing, ru.national_prefix_transform_rule, ru.international_prefix) == (
        kz.country_code,
        kz.national_prefix_for_parsing,
        kz.national_prefix_transform_rule,
        kz.international_prefix,
    )
    assert "phone" in kinds("8 (771) 000 9998")


@pytest.mark.parametrize(
    "text",
    [
        "ivanov@mail.ru",
        "Пишите: dr.petrova+clinic@med-center.kz.",
        "врач@больница.рф",
        "a_b@sub.domain.uz",
        "user@xn--80ak6aa92e.com",
        "ＩＶＡＮＯＶ＠ＭＡＩＬ．ＲＵ",
    ],
)
def test_email_addresses_are_found(text: str) -> None:
    assert kinds(text) == {"email"}


@pytest.mark.parametrize("text", ["price@5.00", "@doctor_ivanov", "user@localhost", "a @ b.ru", "email at example dot com", "x@y.1"])
def test_things_that_only_look_like_email_are_not(text: str) -> None:
    assert "email" not in kinds(text)


@pytest.mark.parametrize("text", [SNILS, snils(112233445, "plain"), snils(112233445, "spaced"), f"СНИЛС {snils(987654321)}."])
def test_snils_is_found(text: str) -> None:
    assert "ru_snils" in kinds(text)


def test_snils_control_number_rules() -> None:
    assert SNILS == "112-233-445 95"
    # sums of 100 and 101 give 00, sums above 101 are reduced mod 101
    for number in range(1_001_999, 1_100_000, 997):
        assert "ru_snils" in kinds(snils(number, "plain"))
    assert "ru_snils" not in kinds(wrong_last_digit(SNILS))
    # numbers up to 001-001-998 were never given a control number; all zeros are not a SNILS
    assert "ru_snils" not in kinds("00000000000")


@pytest.mark.parametrize("value", [INN10, INN12, inn10("500100732"), inn12("7707083893")])
def test_inn_is_found(value: str) -> None:
    assert "ru_inn" in kinds(f"ИНН {value}")
    assert "ru_inn" not in kinds(f"ИНН {wrong_last_digit(value)}")


def test_inn_known_values() -> None:
    assert INN10 == "7707083893"
    assert INN12 == "500100732259"
    assert "ru_inn" not in kinds("0000000000")


@pytest.mark.parametrize(
    "text",
    ["45 06 123456", "паспорт 4506 123456", "Passport: 4506123456", "серия и номер паспорта: 45 06 № 123456", "4506 123456 (паспорт РФ)"],
)
def test_passport_is_found(text: str) -> None:
    assert "ru_passport" in kinds(text)


@pytest.mark.parametrize("text", ["4506 123456", "4506123456", "заказ 4506 123456 отгружен", "45-06-123456"])
def test_passport_without_context_or_printed_form_is_not(text: str) -> None:
    assert "ru_passport" not in kinds(text)


def test_iin_is_found_and_checked() -> None:
    assert IIN == "900101300017"
    assert "kz_iin" in kinds(f"ИИН {IIN}")
    assert "kz_iin" not in kinds(f"ИИН {wrong_last_digit(IIN)}")
    # the second weight pass: find a number whose first pass gives 10
    second = next(v for s in range(10_000) if (v := iin(datetime.date(1987, 6, 5), True, s)) and _weighted(v, range(1, 12)) % 11 == 10)
    assert "kz_iin" in kinds(second)
    assert "kz_iin" not in kinds(wrong_last_digit(second))


def test_iin_needs_a_real_date_and_century_digit() -> None:
    assert "kz_iin" not in kinds("901301300013")  # month 13
    assert "kz_iin" not in kinds("900230300019")  # 30 February
    valid = iin(datetime.date(1990, 1, 1), False, 1)
    assert valid is not None
    for century in "0789":
        assert "kz_iin" not in kinds(valid[:6] + century + valid[7:])
    never_issued = next(f"{n:04d}" for n in range(10_000) if iin(datetime.date(1990, 1, 1), False, n) is None)
    first11 = f"9001013{never_issued}"
    assert all("kz_iin" not in kinds(first11 + d) for d in string.digits)


def test_pinfl_is_found_and_checked() -> None:
    assert "uz_pinfl" in kinds(f"ПИНФЛ {PINFL}")
    assert "uz_pinfl" not in kinds(f"ПИНФЛ {wrong_last_digit(PINFL)}")
    assert "uz_pinfl" in kinds(pinfl(datetime.date(2004, 2, 29), True, 1, 999))


def test_pinfl_needs_a_real_date_and_century_digit() -> None:
    assert "uz_pinfl" not in kinds(_with_check("3320585045123"))  # day 32
    assert "uz_pinfl" not in kinds(_with_check("7140385045123"))  # century digit 7
    assert "uz_pinfl" not in kinds(_with_check("3290201045123"))  # 29 February 2001 (a 1900s digit: 1901)


def _with_check(first13: str) -> str:
    return first13 + str(_weighted(first13, itertools.cycle((7, 3, 1))) % 10)


@pytest.mark.parametrize(
    "text",
    [
        f"1{INN10}",  # inside a longer digit run
        f"{INN12}5",
        f"99{PINFL}",
        f"{SNILS.replace('-', '').replace(' ', '')}0",
        f"0.{INN10}",
        f"{INN10},5",
    ],
)
def test_digits_inside_longer_runs_are_not_identifiers(text: str) -> None:
    assert kinds(text) - {"phone"} == set()


@pytest.mark.parametrize(
    "text",
    [
        "Амоксициллин 500 mg 3 раза в день, 5 mg/kg, курс 10-15 дней; эффективность 10-15%.",
        "В 2025 году, по данным 2019-2024 гг., 1 234 567 пациентов.",
        "Цена 12 500 руб., скидка 15%, артикул 4607001234567.",
        "ISBN 978-5-17-118366-7, ISBN 5-17-118366-7, ISBN 978-601-7389-54-2",
        "Приказ Минздрава № 203н от 10.05.2017, ГОСТ Р 52379-2005, doi 10.1000/182",
        "Конгресс 15.01.2025 - 17.01.2025, 09:00-18:00, зал 3, места 120-180.",
        "Dose 0.5-1.0 mg/kg/day; HbA1c < 7.0%; BMI 25-29.9; p < 0.001; n = 12345.",
        "EAN 4006381333931, article no. 123456789012345",
    ],
)
def test_ordinary_medical_text_is_not_flagged(text: str) -> None:
    assert scan_text(text) == []


def test_hidden_digits_are_still_found() -> None:
    assert "ru_inn" in kinds("ИНН ７７０７０８３８９３")  # full-width digits
    assert "ru_inn" in kinds("ИНН 77070\u200b83893")  # a zero-width space in the middle
    assert "ru_inn" in kinds("ИНН ٧٧٠٧٠٨٣٨٩٣")  # Arabic-Indic digits


# -- documents ---------------------------------------------------------------------------------------

HASH = "0" * 64


def document(**changes: Any) -> SharedDocument:
    base = SharedDocument(
        kind="article",
        category="cardiology_news",
        specializations=("cardiology",),
        languages=("ru",),
        texts=(Text(language="ru", title="Новые рекомендации", body="Текст статьи без персональных данных."),),
    )
    return msgspec.structs.replace(base, **changes)


def test_every_string_field_is_scanned_with_its_path() -> None:
    doc = document(
        category=f"note-{INN10}",
        specializations=("cardiology", f"x-{IIN}"),
        texts=(
            Text(language="ru", title="Чисто", body="Чисто"),
            Text(language="kk", title=f"СНИЛС {SNILS}", body="ivanov@mail.ru"),
        ),
        lessons=(Lesson(position=0, texts=(Text(language="ru", title="Урок", body=f"ПИНФЛ {PINFL}"),)),),
        event=EventInfo(starts_at="2025-01-15T09:00", ends_at="+7 916 123-45-67", city="Москва", venue="паспорт 4506 123456"),
        blobs=(Blob(key=f"scans/{INN12}.pdf", sha256=HASH, length=10, media_type="application/pdf"),),
    )
    found = {(f.kind, f.path) for f in scan_document(doc, allow_byline=True)}
    assert found >= {
        ("ru_inn", "category"),
        ("kz_iin", "specializations[1]"),
        ("ru_snils", "texts[1].title"),
        ("email", "texts[1].body"),
        ("uz_pinfl", "lessons[0].texts[0].body"),
        ("phone", "event.ends_at"),
        ("ru_passport", "event.venue"),
        ("ru_inn", "blobs[0].key"),
    }
    assert not any(path.startswith("texts[0]") or path == "event.starts_at" for _, path in found)


def test_a_clean_document_passes() -> None:
    check_document(document(), allow_byline=False)


def test_byline_name_is_a_finding_only_when_bylines_are_not_allowed() -> None:
    doc = document(byline=Byline(name="Иванова Мария Петровна", cross_border_consent=False))
    check_document(doc, allow_byline=True)
    [finding] = scan_document(doc, allow_byline=False)
    assert (finding.kind, finding.path) == ("byline", "byline.name")
    assert "Иванова" not in str(finding)


def test_contact_data_in_a_byline_is_always_a_finding() -> None:
    doc = document(byline=Byline(name="Д-р Иванова, ivanova@clinic.ru", cross_border_consent=True))
    assert [(f.kind, f.path) for f in scan_document(doc, allow_byline=True)] == [("email", "byline.name")]


def test_hash_fields_are_not_text() -> None:
    # 64 hex digits may hold a digit run that passes a checksum; the hash is computed, never written.
    doc = document(blobs=(Blob(key="a.png", sha256=f"{INN12}{'a' * 52}", length=1, media_type="image/png"),))
    check_document(doc, allow_byline=True)


def test_findings_and_the_error_never_hold_the_value() -> None:
    secrets = [SNILS, INN10, INN12, IIN, PINFL, "4506 123456", "+7 916 123-45-67", "ivanov@mail.ru"]
    doc = document(texts=(Text(language="ru", title="Данные", body=" ; ".join(["паспорт", *secrets])),))
    with pytest.raises(BorderError) as caught:
        check_document(doc, allow_byline=True)
    error = caught.value
    assert error.code == "border.personal_data"
    assert isinstance(error, PersonalDataError)
    assert {f.kind for f in error.findings} == {"phone", "email", "ru_snils", "ru_inn", "ru_passport", "kz_iin", "uz_pinfl"}
    shown = [str(error), error.message, *(str(f) for f in error.findings), *(repr(f) for f in error.findings)]
    for secret in secrets:
        digits = "".join(ch for ch in secret if ch.isdigit())
        for text in shown:
            assert secret not in text
            assert not digits or digits not in "".join(ch for ch in text if ch.isdigit())
            assert "ivanov" not in text
    assert str(error) == (
        "border.personal_data: personal data in the item: phone at texts[0].body; email at texts[0].body; "
        "ru_snils at texts[0].body; ru_inn at texts[0].body; ru_passport at texts[0].body; kz_iin at texts[0].body; "
        "uz_pinfl at texts[0].body"
    )


def test_the_error_survives_pickling() -> None:
    # Celery carries a task's exception to another process by pickling it.
    error = PersonalDataError((Finding("email", "texts[0].body", "an e-mail address in texts[0].body"),))
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.findings, copy.code) == (PersonalDataError, str(error), error.findings, "border.personal_data")


def test_a_finding_reads_as_its_reason() -> None:
    finding = Finding("email", "texts[0].body", "an e-mail address in texts[0].body")
    assert str(finding) == "an e-mail address in texts[0].body"


# -- property: whatever field it hides in, it is found -------------------------------------------------

SAFE = string.ascii_letters + "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯәғқңөұүіʻ" + " .,;:!?()'\"«»—"
safe_text = st.text(alphabet=SAFE, max_size=40)
safe_slug = st.from_regex(r"[a-z][a-z_-]{0,15}", fullmatch=True)
languages = st.sampled_from(["ru", "kk", "uz", "en"])
texts = st.builds(
    Text, language=languages, title=st.text(alphabet=SAFE, min_size=1, max_size=40), body=st.text(alphabet=SAFE, max_size=120)
)
documents = st.builds(
    SharedDocument,
    kind=st.sampled_from(["article", "course", "event", "product_note"]),
    category=safe_slug,
    specializations=st.lists(safe_slug, max_size=3).map(tuple),
    languages=st.lists(languages, max_size=4, unique=True).map(tuple),
    texts=st.lists(texts, min_size=1, max_size=3).map(tuple),
    origin_only=st.booleans(),
    byline=st.none() | st.builds(Byline, name=st.text(alphabet=SAFE, min_size=1, max_size=40), cross_border_consent=st.booleans()),
    lessons=st.lists(st.builds(Lesson, position=st.integers(0, 50), texts=st.lists(texts, max_size=2).map(tuple)), max_size=2).map(tuple),
    event=st.none() | st.builds(EventInfo, starts_at=safe_text, ends_at=safe_text, city=safe_text, venue=safe_text),
    blobs=st.lists(
        st.builds(
            Blob,
            key=st.from_regex(r"[a-z][a-z._-]{0,20}(/[a-z][a-z._-]{0,10})?", fullmatch=True),
            sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
            length=st.integers(0, 2**40),
            media_type=st.sampled_from(["image/png", "image/jpeg", "application/pdf", "video/mp4"]),
        ),
        max_size=2,
    ).map(tuple),
).map(lambda doc: from_builtins(to_builtins(doc)))  # the allow-list's own validation

dates = st.dates(min_value=datetime.date(1850, 1, 1), max_value=datetime.date(2099, 12, 31))
PHONE_FORMATS = (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.E164)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str, str | None]:
    region = draw(st.sampled_from(["RU", "KZ", "UZ"]))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.format_number(phonenumbers.example_number_for_type(region, kind), phonenumbers.PhoneNumberFormat.E164)
    tail = draw(st.text(alphabet=string.digits, min_size=4, max_size=4))
    number = phonenumbers.parse(example[:-4] + tail)
    assume(phonenumbers.is_valid_number(number))
    formatted = phonenumbers.format_number(number, draw(st.sampled_from(PHONE_FORMATS)))
    return "phone", formatted, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str, str | None]:
    local = draw(st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True))
    labels = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), min_size=1, max_size=3))
    tld = draw(st.sampled_from(["ru", "kz", "uz", "com", "org", "рф", "қаз"]))
    return "email", f"{local}@{'.'.join(labels)}.{tld}", None


@st.composite
def snilses(draw: st.DrawFn) -> tuple[str, str, str | None]:
    number = draw(st.integers(1_001_999, 999_999_999))
    return "ru_snils", snils(number, draw(st.sampled_from(["dashed", "spaced", "plain"]))), snils(number, "plain")


@st.composite
def inns(draw: st.DrawFn) -> tuple[str, str, str | None]:
    region = draw(st.integers(1, 99))
    if draw(st.booleans()):
        value = inn10(f"{region:02d}{draw(st.integers(0, 10**7 - 1)):07d}")
    else:
        value = inn12(f"{region:02d}{draw(st.integers(0, 10**8 - 1)):08d}")
    return "ru_inn", value, value


@st.composite
def iins(draw: st.DrawFn) -> tuple[str, str, str | None]:
    value = draw(st.builds(iin, dates, st.booleans(), st.integers(0, 9999)).filter(bool))
    assert value is not None
    return "kz_iin", value, value


@st.composite
def pinfls(draw: st.DrawFn) -> tuple[str, str, str | None]:
    value = pinfl(draw(dates), draw(st.booleans()), draw(st.integers(0, 999)), draw(st.integers(0, 999)))
    return "uz_pinfl", value, value


secrets = st.one_of(phones(), emails(), snilses(), inns(), iins(), pinfls())


def _string_slots(data: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string of the builtins form with how a value may be smuggled into it."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _string_slots(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _string_slots(value, (*path, index))
    elif isinstance(data, str):
        last = next(p for p in reversed(path) if isinstance(p, str))
        if last in ("category", "specializations"):
            yield path, "slug"
        elif last in ("key", "media_type"):
            yield path, "suffix"
        elif last not in ("kind", "language", "languages", "sha256"):
            yield path, "free"


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _smuggle(draw: st.DrawFn, doc: SharedDocument, text: str, compact: str | None) -> tuple[SharedDocument, str]:
    data = msgspec.json.decode(msgspec.json.encode(doc))  # lists, so a field can be replaced in place
    slots = [(path, how) for path, how in _string_slots(data) if how == "free" or compact is not None]
    path, how = draw(st.sampled_from(slots))
    parent: Any = data
    for step in path[:-1]:
        parent = parent[step]
    old: str = parent[path[-1]]
    if how == "free":
        at = draw(st.integers(0, len(old)))
        parent[path[-1]] = f"{old[:at]} {text} {old[at:]}"
    else:
        parent[path[-1]] = f"{old}-{compact}"
    return from_builtins(data), _dotted(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), documents, secrets)
def test_smuggled_personal_data_is_refused_wherever_it_hides(
    data: st.DataObject, doc: SharedDocument, secret: tuple[str, str, str | None]
) -> None:
    kind, text, compact = secret
    smuggled, path = _smuggle(data.draw, doc, text, compact)
    with pytest.raises(PersonalDataError) as caught:
        check_document(smuggled, allow_byline=True)
    assert caught.value.code == "border.personal_data"
    assert (kind, path) in {(f.kind, f.path) for f in caught.value.findings}
    for value in filter(None, (text, compact)):
        assert value not in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_documents_without_personal_data_pass(doc: SharedDocument) -> None:
    check_document(doc, allow_byline=True)
    findings = scan_document(doc, allow_byline=False)
    assert [(f.kind, f.path) for f in findings] == ([("byline", "byline.name")] if doc.byline else [])


def test_generators_agree_with_published_examples() -> None:
    # Guards the generators themselves: a generator that agreed with a wrong detector would prove nothing.
    assert inn10("770708389") == "7707083893"  # a published legal-entity INN
    assert snils(112233445, "plain") == "11223344595"  # the example used in SNILS documentation


def test_content_addressed_blob_keys_are_not_mistaken_for_numbers() -> None:
    import hashlib
    import uuid

    for n in range(2000):
        sha = hashlib.sha256(str(n).encode()).hexdigest()
        separator = "_/"[n % 2]  # the flat layout, and the folder per item written before it
        blob = Blob(key=f"media/{uuid.uuid4()}{separator}{sha}", sha256=sha, length=1, media_type="image/png")
        assert scan_document(document(blobs=(blob,)), allow_byline=True) == []


def test_a_blob_key_that_is_not_its_content_address_is_scanned() -> None:
    sha = "ab" * 32
    blob = Blob(key="media/call-79161234567.png", sha256=sha, length=1, media_type="image/png")
    assert [(f.kind, f.path) for f in scan_document(document(blobs=(blob,)), allow_byline=True)] == [("phone", "blobs[0].key")]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("kz_iin", "850417401236", "850417401237"),
        ("uz_pinfl", "41704850123401", "41704850123402"),
        ("ru_snils", "11223344595", "11223344596"),
    ],
)
def test_a_national_id_is_valid_only_with_its_length_and_check_digit(kind: NationalIdKind, good: str, bad: str) -> None:
    assert national_id_valid(kind, good)
    assert not national_id_valid(kind, bad)
    assert not national_id_valid(kind, good + "0")
    assert not national_id_valid(kind, "\u0663" + good[1:])  # an Arabic-Indic digit is not a digit of an id
    # What the node accepts as an id is what the border finds as one.
    assert kind in {found for found, _ in scan_text(f"id {good}")}


# -- the shortcuts of scan_text change nothing ------------------------------------------------------------
# scan_text skips the matchers when a normalised text has no "@" and fewer than six digits, and skips the
# normalisation of ASCII text. Both must give exactly what the full scan gives.

TRICKY = "0123456789@＠﹫０１２３４５６７８９٠١٢٣٧\u200b\u00ad\u2060\ufeff\u00a0 -+().,/№" + SAFE


@settings(max_examples=500)
@given(st.text(alphabet=TRICKY, max_size=60))
def test_the_shortcut_finds_what_the_full_scan_finds(text: str) -> None:
    assert scan_text(text) == _findings(_normalise(text))


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_text_needs_no_normalising(text: str) -> None:
    assert _NON_ASCII_DIGIT.sub("?", _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))) == text


@pytest.mark.parametrize("text", ["тел. 8 916 123-45-67", "пишите: doc@clinic.ru", "ИНН ７７０７０８３８９３", "a＠b.ru"])
def test_texts_the_shortcut_must_not_skip(text: str) -> None:
    assert scan_text(text) != []
