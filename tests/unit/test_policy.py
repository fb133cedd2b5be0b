"""Isolation rules: each rule accepts and refuses with its own reason code, bylines are stripped as the rule
says, the shipped policies behave as their comments say, and a bad policy file is one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from medplat.config import regions_dir
from medsync.errors import PolicyError
from medsync.items import Blob, Byline, EventInfo, Lesson, SharedDocument, Text
from medsync.policy import Inbound, OriginRule, Outbound, Policy, Reason, Verdict, evaluate_inbound, evaluate_outbound, load_policy, preview

HASH = "ab" * 32
PHONE = "+7 916 123-45-67"


def document(**changes: Any) -> SharedDocument:
    base = SharedDocument(
        kind="article",
        category="news",
        specializations=("cardiology",),
        languages=("ru",),
        texts=(Text(language="ru", title="Новые рекомендации", body="Текст без персональных данных."),),
    )
    return msgspec.structs.replace(base, **changes)


def blob(index: int = 0, *, length: int = 1000, media_type: str = "image/png") -> Blob:
    return Blob(key=f"media/{index}.png", sha256=HASH, length=length, media_type=media_type)


KZ = Policy(
    region="kz",
    outbound=Outbound(share_to=("ru", "uz"), bylines="strip_without_consent"),
    inbound=Inbound(
        origins={"uz": OriginRule(), "ru": OriginRule(categories=("product_note", "event", "congress"))},
        kinds=("article", "course", "event", "product_note"),
        categories=("clinical_research", "news", "product_note", "event", "congress"),
        languages_any_of=("kk", "ru"),
        bylines="strip_without_consent",
        max_item_bytes=10_000,
        max_blob_bytes=5_000,
        max_blobs=2,
        media_types=("image/png", "application/pdf"),
    ),
)


def with_inbound(**changes: Any) -> Policy:
    return msgspec.structs.replace(KZ, inbound=msgspec.structs.replace(KZ.inbound, **changes))


def with_outbound(**changes: Any) -> Policy:
    return msgspec.structs.replace(KZ, outbound=msgspec.structs.replace(KZ.outbound, **changes))


def inbound(doc: SharedDocument, *, policy: Policy = KZ, origin: str = "uz", size: int = 500) -> Verdict:
    return evaluate_inbound(policy, doc, origin=origin, target=policy.region, document_bytes=size)


def outbound(doc: SharedDocument, *, policy: Policy = KZ, target: str = "uz") -> Verdict:
    return evaluate_outbound(policy, doc, origin=policy.region, target=target)


def codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def refused(verdict: Verdict, *expected: str) -> None:
    assert not verdict.accepted
    assert verdict.document is None
    assert codes(verdict) == list(expected)


# -- outbound ----------------------------------------------------------------------------------------


def test_outbound_accepts_a_clean_item_to_a_listed_target() -> None:
    doc = document()
    verdict = outbound(doc, target="ru")
    assert verdict == Verdict(accepted=True, reasons=(), document=doc)


@pytest.mark.parametrize("target", ["by", "kz"])
def test_outbound_refuses_a_target_not_in_share_to(target: str) -> None:
    verdict = outbound(document(), target=target)
    refused(verdict, "policy.target_not_allowed")
    assert verdict.reasons[0].message == f"kz shares only to ru, uz, not to {target!r}"


def test_origin_only_never_leaves() -> None:
    refused(outbound(document(origin_only=True)), "policy.origin_only")


def test_outbound_runs_the_border_check() -> None:
    verdict = outbound(document(lessons=(Lesson(position=0, texts=(Text(language="ru", title="Урок", body=f"Звоните {PHONE}"),)),)))
    refused(verdict, "border.personal_data")
    assert verdict.reasons[0].message == "a phone number in lessons[0].texts[0].body"


def test_outbound_lists_every_reason() -> None:
    verdict = outbound(document(origin_only=True, event=EventInfo(starts_at="", ends_at="", city="", venue=PHONE)), target="kz")
    refused(verdict, "policy.origin_only", "policy.target_not_allowed", "border.personal_data")


def test_outbound_is_judged_by_the_origins_own_policy() -> None:
    with pytest.raises(ValueError, match="policy of kz"):
        evaluate_outbound(KZ, document(), origin="ru", target="uz")


# -- bylines, on both sides --------------------------------------------------------------------------

WITHOUT_CONSENT = Byline(name="Иванова Мария", cross_border_consent=False)
WITH_CONSENT = Byline(name="Иванова Мария", cross_border_consent=True)


@pytest.mark.parametrize(
    ("rule", "byline", "kept"),
    [
        ("strip_without_consent", WITHOUT_CONSENT, False),
        ("strip_without_consent", WITH_CONSENT, True),
        ("always_strip", WITH_CONSENT, False),
        ("always_strip", WITHOUT_CONSENT, False),
        ("keep", WITHOUT_CONSENT, True),
        ("keep", WITH_CONSENT, True),
    ],
)
@pytest.mark.parametrize("side", ["outbound", "inbound"])
def test_bylines_follow_the_rule(side: str, rule: str, byline: Byline, kept: bool) -> None:
    doc = document(byline=byline)
    verdict = outbound(doc, policy=with_outbound(bylines=rule)) if side == "outbound" else inbound(doc, policy=with_inbound(bylines=rule))
    assert verdict.accepted
    assert verdict.document is not None
    if kept:
        assert verdict.reasons == ()
        assert verdict.document.byline == byline
    else:
        # stripping is a change recorded on an accepted verdict, not a refusal
        assert codes(verdict) == ["policy.byline_stripped"]
        assert verdict.document == msgspec.structs.replace(doc, byline=None)
        assert "Иванова" not in verdict.reasons[0].message


def test_contact_data_in_a_kept_byline_is_still_refused() -> None:
    verdict = outbound(document(byline=Byline(name=f"Иванова, {PHONE}", cross_border_consent=True)))
    refused(verdict, "border.personal_data")
    assert verdict.reasons[0].message == "a phone number in byline.name"


# -- inbound, rule by rule ---------------------------------------------------------------------------


def test_inbound_accepts_a_clean_item_from_an_accepted_origin() -> None:
    doc = document(blobs=(blob(),))
    assert inbound(doc) == Verdict(accepted=True, reasons=(), document=doc)


def test_origin_not_accepted() -> None:
    verdict = inbound(document(), origin="by")
    refused(verdict, "policy.origin_not_accepted")
    assert verdict.reasons[0].message == "kz does not accept content from 'by'"


def test_kind_not_accepted_overall_and_per_origin() -> None:
    refused(inbound(document(kind="course"), policy=with_inbound(kinds=("article",))), "policy.kind_not_accepted")
    per_origin = with_inbound(origins={"uz": OriginRule(kinds=("event",))})
    refused(inbound(document(kind="article"), policy=per_origin), "policy.kind_not_accepted")
    assert inbound(document(kind="event"), policy=per_origin).accepted


def test_category_not_accepted_overall() -> None:
    verdict = inbound(document(category="gossip"))
    refused(verdict, "policy.category_not_accepted")
    assert verdict.reasons[0].message == "kz does not accept category 'gossip'"


def test_category_limited_per_origin() -> None:
    assert inbound(document(category="news"), origin="uz").accepted
    verdict = inbound(document(category="news"), origin="ru")
    refused(verdict, "policy.category_not_accepted")
    assert verdict.reasons[0].message == "kz accepts from ru only categories product_note, event, congress, not 'news'"
    assert inbound(document(category="product_note", kind="product_note"), origin="ru").accepted


def test_any_category_when_none_are_listed() -> None:
    assert inbound(document(category="anything_at_all"), policy=with_inbound(categories=None)).accepted


def test_a_category_holding_personal_data_is_not_echoed() -> None:
    verdict = inbound(document(category="call-79161234567"))
    assert codes(verdict) == ["policy.category_not_accepted", "border.personal_data"]
    assert all("79161234567" not in r.message for r in verdict.reasons)


def test_language_required() -> None:
    uz_only = (Text(language="uz", title="Yangi tavsiyalar", body="Matn"),)
    verdict = inbound(document(languages=("uz",), texts=uz_only))
    refused(verdict, "policy.language_required")
    assert verdict.reasons[0].message == "kz requires a text in one of kk, ru; the item has none"
    kk = (Text(language="kk", title="Жаңа ұсыныстар", body="Мәтін"), *uz_only)
    assert inbound(document(languages=("kk", "uz"), texts=kk)).accepted
    assert inbound(document(texts=uz_only), policy=with_inbound(languages_any_of=())).accepted


def test_language_required_in_every_lesson_that_has_texts() -> None:
    lessons = (
        Lesson(position=0, texts=(Text(language="ru", title="Урок 1", body=""),)),
        Lesson(position=1, texts=(Text(language="uz", title="Dars 2", body=""),)),
        Lesson(position=2, texts=()),
    )
    verdict = inbound(document(kind="course", lessons=lessons))
    refused(verdict, "policy.language_required")
    assert verdict.reasons[0].message.endswith("lessons[1] has none")


def test_origin_only_refused_by_the_target_too() -> None:
    refused(inbound(document(origin_only=True)), "policy.origin_only")


def test_item_size_limit() -> None:
    assert inbound(document(), size=10_000).accepted
    verdict = inbound(document(), size=10_001)
    refused(verdict, "policy.item_too_large")
    assert verdict.reasons[0].message == "the item is 10001 bytes; kz accepts at most 10000"


def test_blob_size_limit() -> None:
    assert inbound(document(blobs=(blob(length=5_000),))).accepted
    verdict = inbound(document(blobs=(blob(0), blob(1, length=5_001))))
    refused(verdict, "policy.blob_too_large")
    assert verdict.reasons[0].message == "blobs[1] is 5001 bytes; kz accepts at most 5000"


def test_blob_count_limit() -> None:
    assert inbound(document(blobs=(blob(0), blob(1)))).accepted
    refused(inbound(document(blobs=(blob(0), blob(1), blob(2)))), "policy.too_many_blobs")


def test_media_types() -> None:
    assert inbound(document(blobs=(blob(media_type="application/pdf"),))).accepted
    verdict = inbound(document(blobs=(blob(media_type="text/html"),)))
    refused(verdict, "policy.media_type")
    assert verdict.reasons[0].message == "blobs[0] is 'text/html'; kz accepts only image/png, application/pdf"


def test_inbound_runs_the_border_check_again() -> None:
    verdict = inbound(document(texts=(Text(language="ru", title="Контакты", body="ivanova@clinic.kz"),)))
    refused(verdict, "border.personal_data")
    assert "ivanova" not in verdict.reasons[0].message


def test_inbound_lists_every_reason() -> None:
    doc = document(kind="course", category="news", origin_only=True, texts=(Text(language="en", title="x", body=""),))
    doc = msgspec.structs.replace(doc, blobs=(blob(0, length=9_999, media_type="video/mp4"), blob(1), blob(2)))
    verdict = inbound(doc, policy=with_inbound(kinds=("article",)), origin="ru", size=20_000)
    refused(
        verdict,
        "policy.kind_not_accepted",
        "policy.category_not_accepted",
        "policy.origin_only",
        "policy.language_required",
        "policy.item_too_large",
        "policy.too_many_blobs",
        "policy.blob_too_large",
        "policy.media_type",
    )


def test_inbound_is_judged_by_the_targets_own_policy() -> None:
    with pytest.raises(ValueError, match="policy of kz"):
        evaluate_inbound(KZ, document(), origin="uz", target="ru", document_bytes=1)


def test_verdicts_serialise_for_receipts() -> None:
    verdict = inbound(document(category="gossip"))
    data = msgspec.to_builtins(verdict)
    assert list(data["reasons"]) == [{"code": "policy.category_not_accepted", "message": "kz does not accept category 'gossip'"}]
    assert msgspec.convert(data["reasons"][0], Reason) == verdict.reasons[0]


# -- the shipped policies ----------------------------------------------------------------------------


def test_the_shipped_policies_load() -> None:
    for code in ("ru", "kz", "uz"):
        policy = load_policy(code)
        assert policy.region == code
        assert policy.outbound.keep_origin_only
        assert policy.outbound.bylines == policy.inbound.bylines == "strip_without_consent"
        assert policy.inbound.max_item_bytes == 2 * 1024 * 1024
        assert policy.inbound.max_blob_bytes == 200 * 1024 * 1024
        assert set(policy.inbound.media_types) == {"image/png", "image/jpeg", "image/webp", "application/pdf", "video/mp4"}
    assert load_policy("ru").outbound.share_to == ("kz", "uz")
    assert load_policy("kz").inbound.origins["ru"].categories == ("product_note", "event", "congress")
    assert load_policy("uz").inbound.origins["ru"].categories == ("product_note", "event", "congress")
    assert load_policy("kz").inbound.origins["uz"] == load_policy("uz").inbound.origins["kz"] == OriginRule()


def test_a_ru_clinical_research_article_is_refused_by_kz_and_uz() -> None:
    verdicts = preview(document(category="clinical_research"), origin="ru", targets=["kz", "uz"])
    for target in ("kz", "uz"):
        refused(verdicts[target], "policy.category_not_accepted")


def test_a_ru_product_note_is_accepted_by_kz_and_uz() -> None:
    doc = document(kind="product_note", category="product_note", blobs=(blob(media_type="image/webp"),))
    verdicts = preview(doc, origin="ru", targets=["kz", "uz"])
    assert verdicts == {"kz": Verdict(True, (), doc), "uz": Verdict(True, (), doc)}


def test_kz_and_uz_take_everything_allowed_from_each_other() -> None:
    doc = document(category="clinical_research")
    assert preview(doc, origin="kz", targets=["uz"])["uz"].accepted
    assert preview(doc, origin="uz", targets=["kz"])["kz"].accepted


def test_languages_of_the_shipped_policies() -> None:
    uz_only = document(languages=("uz",), texts=(Text(language="uz", title="Yangi tavsiyalar", body="Matn"),))
    verdicts = preview(uz_only, origin="uz", targets=["kz", "ru"])
    refused(verdicts["kz"], "policy.language_required")
    refused(verdicts["ru"], "policy.language_required")
    kk_only = document(languages=("kk",), texts=(Text(language="kk", title="Жаңа ұсыныстар", body="Мәтін"),))
    verdicts = preview(kk_only, origin="kz", targets=["uz", "ru"])
    refused(verdicts["uz"], "policy.language_required")
    refused(verdicts["ru"], "policy.language_required")
    clean = document()
    assert preview(clean, origin="uz", targets=["kz", "ru"]) == {"kz": Verdict(True, (), clean), "ru": Verdict(True, (), clean)}


def test_origin_only_never_leaves_any_shipped_region() -> None:
    event = document(kind="event", category="congress", origin_only=True)
    for origin, targets in {"ru": ["kz", "uz"], "kz": ["ru", "uz"], "uz": ["ru", "kz"]}.items():
        for verdict in preview(event, origin=origin, targets=targets).values():
            # the target would refuse it too, in the same words: the editor reads it once
            refused(verdict, "policy.origin_only")


def test_shipped_bylines_cross_only_with_consent() -> None:
    note = document(kind="product_note", category="product_note")
    stripped = preview(msgspec.structs.replace(note, byline=WITHOUT_CONSENT), origin="ru", targets=["kz"])["kz"]
    assert stripped.accepted
    assert codes(stripped) == ["policy.byline_stripped"]
    assert stripped.document is not None
    assert stripped.document.byline is None
    kept = preview(msgspec.structs.replace(note, byline=WITH_CONSENT), origin="ru", targets=["kz"])["kz"]
    assert kept == Verdict(True, (), msgspec.structs.replace(note, byline=WITH_CONSENT))


def test_preview_shows_a_border_finding_once() -> None:
    doc = document(texts=(Text(language="ru", title="Контакты", body=PHONE),))
    verdict = preview(doc, origin="uz", targets=["kz"])["kz"]
    refused(verdict, "border.personal_data")


def test_preview_of_a_target_the_origin_does_not_share_to() -> None:
    verdicts = preview(document(), origin="ru", targets=["ru", "by"])
    refused(verdicts["ru"], "policy.target_not_allowed")
    refused(verdicts["by"], "policy.target_not_allowed")


def test_preview_measures_the_canonical_document() -> None:
    big = "я" * 600_000  # two bytes each in UTF-8: 2.4 MB over two texts
    doc = document(texts=(Text(language="ru", title="a", body=big), Text(language="kk", title="b", body=big)))
    refused(preview(doc, origin="uz", targets=["kz"])["kz"], "policy.item_too_large")


# -- bad policy files --------------------------------------------------------------------------------


@pytest.fixture
def regions(tmp_path: Path) -> Path:
    for code in ("ru", "kz", "uz"):
        (tmp_path / code).mkdir()
        (tmp_path / code / "region.toml").touch()
        shutil.copy(regions_dir() / code / "policy.toml", tmp_path / code / "policy.toml")
    return tmp_path


def rewrite(regions: Path, code: str, old: str, new: str) -> Path:
    path = regions / code / "policy.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_an_unchanged_copy_loads(regions: Path) -> None:
    assert load_policy("kz", regions) == load_policy("kz")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_blobs = 50", "max_blobs = 50\ncolour = 1", "Object contains unknown field `colour` - at `$.inbound`"),
        ("max_item_bytes = 2_097_152", 'max_item_bytes = "2 MiB"', "Expected `int`, got `str` - at `$.inbound.max_item_bytes`"),
        ("max_blob_bytes = 209_715_200", "max_blob_bytes = 0", "Expected `int` >= 1 - at `$.inbound.max_blob_bytes`"),
        ('bylines = "strip_without_consent"', 'bylines = "sometimes"', "Invalid enum value 'sometimes' - at `$.outbound.bylines`"),
        ("keep_origin_only = true", "keep_origin_only = false", "at `$.outbound.keep_origin_only`"),
        ('"video/mp4"]', '"video mp4"]', "at `$.inbound.media_types[4]`"),
        ('region = "kz"', 'region = "uz"', "region: says 'uz' but the file lives in the folder of 'kz'"),
        ('share_to = ["ru", "uz"]', 'share_to = ["ru", "kz"]', "outbound.share_to: names the region itself"),
        ('share_to = ["ru", "uz"]', 'share_to = ["ru", "by"]', "outbound.share_to: 'by' is not a known region (kz, ru, uz)"),
        ("[inbound.origins.uz]", "[inbound.origins.kz]", "inbound.origins.kz: names the region itself"),
        ('categories = ["product_note", "event", "congress"]', 'categories = ["gossip"]', "inbound.origins.ru.categories: gossip"),
        ('categories = ["product_note", "event", "congress"]', 'kinds = ["podcast"]', "at `$.inbound.origins[...].kinds[0]`"),
        ("[inbound]", "[inbound", "not valid TOML"),
    ],
)
def test_a_bad_policy_file_is_one_line_naming_the_file_and_the_field(regions: Path, old: str, new: str, message: str) -> None:
    path = rewrite(regions, "kz", old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy("kz", regions)
    error = caught.value
    assert error.code == "policy.invalid"
    assert error.message.startswith(f"{path}: ")
    assert message in error.message
    assert "\n" not in error.message


def test_a_missing_policy_file(regions: Path) -> None:
    (regions / "uz" / "policy.toml").unlink()
    with pytest.raises(PolicyError, match=r"policy\.toml: No such file or directory"):
        load_policy("uz", regions)


@pytest.mark.parametrize("code", ["../etc", "RU", "", "kzz"])
def test_a_region_code_is_checked_before_it_names_a_path(regions: Path, code: str) -> None:
    with pytest.raises(PolicyError, match="is not a region code"):
        load_policy(code, regions)
