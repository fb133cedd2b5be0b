"""Property: whatever an editor writes, no manifest ever carries a personal field.

Generated items go through the real pipeline that runs before anything leaves a node: the serializer of
SHARED models (`shared_document`), the policies of the origin and of each target (with the border check),
and the manifest builder. Some items smuggle a doctor's phone number, e-mail address or national
identifier into a text, a lesson or an event field; every author has a name and some have not consented
to cross-border transfer. The property: the signed manifest bytes never contain any of it.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import msgspec
import phonenumbers
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medplat.domain.accounts.models import ContentAuthor
from medplat.domain.content.models import ContentItem
from medplat.domain.content.services import shared_document
from medsync import manifest
from medsync.items import Blob, Byline, EventInfo, Lesson, SharedDocument, Text
from medsync.policy import preview
from tests.unit.test_border import iin, inn10, pinfl, snils

KEY = Ed25519PrivateKey.generate()
SAFE = "абвгдежзиклмнопрстуфхцчшщыэюяabcdefghijklmnopqrstuvwxyz ,.;:!?-"
ALLOWED_KEYS = {
    name
    for struct in (manifest.ManifestBody, manifest.ManifestItem, SharedDocument, Text, Lesson, EventInfo, Byline, Blob)
    for name in struct.__struct_fields__
}


@st.composite
def phones(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["+7 701", "+7 777", "+7 916", "+7 903", "+998 90", "+998 93"]))
    rest = draw(st.text(alphabet="0123456789", min_size=7, max_size=7))
    number = f"{prefix} {rest[:3]} {rest[3:5]} {rest[5:]}"
    parsed = phonenumbers.parse(number)
    if not phonenumbers.is_valid_number(parsed):
        # Keep the draw usable: fall back to a number phonenumbers knows to be valid for that country.
        example = phonenumbers.example_number_for_type(phonenumbers.region_code_for_number(parsed), phonenumbers.PhoneNumberType.MOBILE)
        return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return number


def _iin(draw: st.DrawFn) -> str:
    while True:
        value = iin(draw(st.dates(datetime.date(1950, 1, 1), datetime.date(2005, 12, 31))), draw(st.booleans()), draw(st.integers(0, 9999)))
        if value is not None:
            return value


@st.composite
def secrets_(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["phone", "email", "snils", "inn", "iin", "pinfl"]))
    if kind == "phone":
        return draw(phones())
    if kind == "email":
        local = draw(
            st.text(alphabet="abcdefghij.", min_size=2, max_size=10).filter(lambda s: s[0] != "." and s[-1] != "." and ".." not in s)
        )
        return f"{local}@{draw(st.sampled_from(['clinic.kz', 'mail.ru', 'med.uz']))}"
    if kind == "snils":
        return snils(draw(st.integers(1_002_000, 999_999_999)))  # below 001-001-998 SNILS has no control number
    if kind == "inn":
        return inn10(draw(st.text(alphabet="0123456789", min_size=9, max_size=9).filter(lambda s: not s.startswith("00"))))
    if kind == "iin":
        return _iin(draw)
    return pinfl(
        draw(st.dates(datetime.date(1950, 1, 1), datetime.date(2005, 12, 31))),
        draw(st.booleans()),
        draw(st.integers(1, 99)),
        draw(st.integers(0, 999)),
    )


@st.composite
def items(draw: st.DrawFn) -> tuple[ContentItem, ContentAuthor, list[str], str]:
    """An item with an author, the secrets smuggled into it (maybe none) and the author's name."""
    texts = [
        {
            "language": "ru",
            "title": draw(st.text(SAFE, min_size=1, max_size=40)).strip() or "Заголовок",
            "body": draw(st.text(SAFE, max_size=200)),
        }
    ]
    lessons = [{"position": 1, "texts": [{"language": "ru", "title": "Урок", "body": draw(st.text(SAFE, max_size=80))}]}]
    event = {"starts_at": "2027-05-10T09:00:00Z", "ends_at": "2027-05-12T18:00:00Z", "city": "Алматы", "venue": "Конгресс-холл"}
    kind = draw(st.sampled_from(["article", "course", "event", "product_note"]))
    smuggled: list[str] = []
    if draw(st.booleans()):
        secret = draw(secrets_())
        smuggled.append(secret)
        # Only into fields the item's kind carries: a lesson of an article would never be serialized.
        where = draw(
            st.sampled_from(["title", "body", *(["lesson"] if kind == "course" else []), *(["venue", "city"] if kind == "event" else [])])
        )
        if where in ("title", "body"):
            texts[0][where] = f"{texts[0][where][:50]} {secret} {draw(st.text(SAFE, max_size=20))}"
        elif where == "lesson":
            lessons[0]["texts"][0]["body"] += f" тел. {secret}"  # type: ignore[index]
        else:
            event[where] = f"{event[where]} {secret}"
    item = ContentItem(
        id=uuid.uuid4(), origin_region="ru", kind=kind, title=texts[0]["title"],
        category=draw(st.sampled_from(["product_note", "event", "congress", "education", "clinical_research"])),
        specializations=["dermatology"], languages=["ru"], origin_only=draw(st.booleans()), status="draft", version=0,
        draft={"texts": texts, "lessons": lessons if kind == "course" else [], "event": event if kind == "event" else None},
        targets=["kz", "uz"],
    )  # fmt: skip
    name = f"{draw(st.sampled_from(['Айгерим', 'Иван', 'Dilnoza', 'Bakhyt']))} {uuid.uuid4().hex[:8]}"
    author = ContentAuthor(item_id=item.id, name=name, cross_border_consent=draw(st.booleans()))
    return item, author, smuggled, name


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items())
def test_no_manifest_ever_carries_a_personal_field(generated: tuple[ContentItem, ContentAuthor, list[str], str]) -> None:
    item, author, smuggled, name = generated
    document = shared_document(item, author, [])
    if not author.cross_border_consent:
        assert document.byline is None, "the serializer must not take a byline without consent"
    for target, verdict in preview(document, origin="ru", targets=["kz", "uz"]).items():
        if smuggled:
            assert not verdict.accepted, f"{target} would accept an item with smuggled personal data"
        if not verdict.accepted:
            assert verdict.document is None
            continue
        assert verdict.document is not None
        envelope, _, _ = manifest.build(
            origin="ru",
            target=target,
            sequence=1,
            previous="",
            items=(manifest.upsert_item(str(item.id), 1, verdict.document),),
            keys=[KEY],
        )
        payload = base64.b64decode(envelope.payload)
        text = payload.decode()
        for secret in smuggled:
            assert secret not in text
            assert "".join(c for c in secret if c.isdigit()) not in "".join(c for c in text if c.isdigit()) or not any(
                c.isdigit() for c in secret
            )
        if not author.cross_border_consent:
            assert name not in text
        assert _keys(json.loads(payload)) <= ALLOWED_KEYS
        msgspec.json.decode(payload)


def test_the_allow_list_has_no_field_for_contact_data_or_identifiers() -> None:
    forbidden = {
        "phone",
        "email",
        "e_mail",
        "iin",
        "pinfl",
        "snils",
        "inn",
        "passport",
        "birth",
        "date_of_birth",
        "address",
        "doctor",
        "author_id",
    }
    assert not {k for k in ALLOWED_KEYS if any(f in k.lower() for f in forbidden)}
