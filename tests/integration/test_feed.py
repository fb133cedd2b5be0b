"""The verified doctors' feed: what it shows (visibility, specializations, language), cursor pages, ETag and
304, the per-process page cache following every change, and bad input as problems naming the field."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from medplat.config import Settings
from medplat.node import sync_db
from medplat.security import Role
from tests.integration.test_accounts import KZ_DOCTOR, PDF, bearer, register, sign_in, staff


async def verified_doctor(client: Any, settings: Settings, person: dict[str, Any] = KZ_DOCTOR) -> dict[str, Any]:
    """A registered, signed-in doctor whose diploma a moderator approved."""
    doctor_id = await register(client, person)
    tokens = await sign_in(client, settings, person)
    up = await client.put("/api/v1/me/diploma", content=PDF, headers={**bearer(tokens["access_token"]), "Content-Type": "application/pdf"})
    assert up.status_code == 201, up.text
    decided = await client.post(
        f"/api/v1/moderation/doctors/{doctor_id}/verification", json={"decision": "approve"}, headers=staff(settings, Role.MODERATOR)
    )
    assert decided.status_code == 200, decided.text
    return {"id": doctor_id, "headers": bearer(tokens["access_token"]), **tokens}


def applied_item(
    settings: Settings,
    *,
    texts: dict[str, str],
    specializations: tuple[str, ...] = ("dermatology",),
    kind: str = "article",
    status: str = "published",
    origin: str = "ru",
    when: datetime.datetime | None = None,
    event: dict[str, str] | None = None,
) -> str:
    """An item as the sync apply leaves it on this node: the item row and its version's allow-listed document."""
    item_id = str(uuid.uuid4())
    languages = sorted(texts)
    document = {
        "kind": kind, "category": kind, "specializations": list(specializations), "languages": languages,
        "texts": [{"language": lang, "title": title, "body": f"{title}. " + "Текст статьи. " * 40} for lang, title in texts.items()],
        "origin_only": False, "byline": None, "lessons": [], "event": event, "blobs": [],
    }  # fmt: skip
    stamp = when or datetime.datetime.now(datetime.UTC)
    with sync_db(settings).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO shared.content_item (id, origin_region, kind, title, category, specializations, languages, origin_only,"
                " status, version, targets, created_at, updated_at) VALUES (:id, :origin, :kind, :title, :kind, :specs, :langs, false,"
                " :status, 1, '{}', :t, :t)"
            ),
            {"id": item_id, "origin": origin, "kind": kind, "title": next(iter(texts.values())), "specs": list(specializations),
             "langs": languages, "status": status, "t": stamp},
        )  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO shared.content_version (item_id, version, op, document, content_hash, created_at)"
                " VALUES (:id, 1, 'upsert', CAST(:doc AS jsonb), :hash, :t)"
            ),
            {"id": item_id, "doc": json.dumps(document), "hash": "0" * 64, "t": stamp},
        )
    return item_id


async def publish_here(client: Any, settings: Settings, title: str, specializations: list[str], kind: str = "article") -> str:
    """An item an editor of this node publishes (no targets: it stays on this node)."""
    editor = staff(settings, Role.EDITOR, "editor-1")
    body = {
        "kind": kind,
        "category": kind,
        "texts": [{"language": "ru", "title": title, "body": "Текст."}],
        "specializations": specializations,
    }
    created = await client.post("/api/v1/content", json=body, headers=editor)
    assert created.status_code == 201, created.text
    published = await client.post(f"/api/v1/content/{created.json()['id']}/publish", headers=editor)
    assert published.status_code == 200, published.text
    return str(created.json()["id"])


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_an_unverified_doctor_is_told_why_the_feed_is_closed(client: Any, settings: Settings) -> None:
    await register(client)
    tokens = await sign_in(client, settings)
    response = await client.get("/api/v1/feed", headers=bearer(tokens["access_token"]))
    assert response.status_code == 403
    body = response.json()
    assert (body["type"], body["verification_status"]) == ("https://medfed.dev/problems/not-verified", "unverified")
    assert body["detail"].startswith("the feed is for verified doctors; your verification status is unverified")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("role", [Role.EDITOR, Role.MODERATOR, Role.DIRECTOR])
async def test_staff_roles_have_no_feed(client: Any, settings: Settings, role: Role) -> None:
    response = await client.get("/api/v1/feed", headers=staff(settings, role))
    assert response.status_code == 403
    assert response.json()["detail"] == "requires one of the roles: doctor"


async def test_the_feed_shows_what_is_published_here_for_my_specializations_and_language(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)  # dermatology, cosmetology
    base = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    applied_item(settings, texts={"ru": "Акне: новые рекомендации", "kk": "Акне: жаңа ұсыныстар"}, when=base)
    applied_item(settings, texts={"ru": "Общая новость"}, specializations=(), when=base + datetime.timedelta(minutes=1))
    applied_item(settings, texts={"ru": "Кардиология"}, specializations=("cardiology",), when=base + datetime.timedelta(minutes=2))
    applied_item(settings, texts={"en": "Only in English"}, when=base + datetime.timedelta(minutes=3))
    applied_item(settings, texts={"ru": "Отозвано"}, status="retracted", when=base + datetime.timedelta(minutes=4))
    editor = staff(settings, Role.EDITOR, "editor-1")
    draft = await client.post(
        "/api/v1/content", headers=editor,
        json={"kind": "article", "category": "article", "texts": [{"language": "ru", "title": "Черновик", "body": "x"}],
              "specializations": ["dermatology"]},
    )  # fmt: skip
    assert draft.status_code == 201
    await publish_here(client, settings, "Опубликовано здесь", ["cosmetology"])

    response = await client.get("/api/v1/feed", headers=doctor["headers"])
    assert titles(response) == ["Опубликовано здесь", "Общая новость", "Акне: новые рекомендации"]
    body = response.json()
    assert (body["language"], body["specializations"], body["next_cursor"]) == ("ru", ["cosmetology", "dermatology"], None)
    first = body["items"][2]
    assert first["languages"] == ["kk", "ru"] and first["kind"] == "article" and first["version"] == 1
    assert first["summary"].startswith("Акне: новые рекомендации. Текст статьи.") and len(first["summary"]) == 280
    assert response.headers["cache-control"] == "private, no-cache"
    assert response.headers["etag"].startswith('"') and response.headers["vary"] == "Authorization"

    assert titles(await client.get("/api/v1/feed?language=kk", headers=doctor["headers"])) == ["Акне: жаңа ұсыныстар"]
    assert titles(await client.get("/api/v1/feed?language=en", headers=doctor["headers"])) == ["Only in English"]
    assert titles(await client.get("/api/v1/feed?specializations=cardiology", headers=doctor["headers"])) == [
        "Кардиология",
        "Общая новость",
    ]


async def test_cursor_pages_walk_every_item_once_newest_first(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    same = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    for n in range(7):  # three share one timestamp: the id breaks the tie
        applied_item(settings, texts={"ru": f"Статья {n}"}, when=same if n < 3 else same + datetime.timedelta(seconds=n))
    seen: list[str] = []
    url = "/api/v1/feed?limit=2"
    pages = 0
    while url:
        response = await client.get(url, headers=doctor["headers"])
        seen += titles(response)
        pages += 1
        cursor = response.json()["next_cursor"]
        url = f"/api/v1/feed?limit=2&cursor={cursor}" if cursor else ""
    assert pages == 4
    assert seen[:4] == ["Статья 6", "Статья 5", "Статья 4", "Статья 3"]
    assert sorted(seen) == [f"Статья {n}" for n in range(7)]


async def test_if_none_match_answers_304_until_the_content_changes(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    item = applied_item(settings, texts={"ru": "Первая"})
    first = await client.get("/api/v1/feed", headers=doctor["headers"])
    etag = first.headers["etag"]
    again = await client.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert again.headers["cache-control"] == "private, no-cache"
    weak_list = await client.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": f'"other", W/{etag}'})
    assert weak_list.status_code == 304
    assert (await client.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": '"stale"'})).status_code == 200

    applied_item(settings, texts={"ru": "Вторая"})  # a new item: the page and its ETag change at once
    changed = await client.get("/api/v1/feed", headers={**doctor["headers"], "If-None-Match": etag})
    assert titles(changed) == ["Вторая", "Первая"] and changed.headers["etag"] != etag

    with sync_db(settings).begin() as conn:  # a retraction as the sync apply writes it
        conn.execute(text("UPDATE shared.content_item SET status = 'retracted', version = 2 WHERE id = :id"), {"id": item})
    assert titles(await client.get("/api/v1/feed", headers=doctor["headers"])) == ["Вторая"]
    cache = client.app.state.feed_cache
    assert cache.hits >= 2 and cache.misses >= 3


async def test_the_page_cache_is_shared_by_doctors_with_the_same_filter(client: Any, settings: Settings) -> None:
    from tests.integration.test_accounts import RU_DOCTOR

    one = await verified_doctor(client, settings)
    other = {**RU_DOCTOR, "citizenship": "KZ", "phone": "+7 702 555 77 88", "email": "second@clinic.kz"}
    two = await verified_doctor(client, settings, other)
    applied_item(settings, texts={"ru": "Для всех"})
    cache = client.app.state.feed_cache
    a = await client.get("/api/v1/feed", headers=one["headers"])
    misses = cache.misses
    b = await client.get("/api/v1/feed", headers=two["headers"])
    assert (cache.misses, a.content, a.headers["etag"]) == (misses, b.content, b.headers["etag"])


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("language=fr", "language", "must be one of ru, kk, uz, en"),
        ("limit=0", "limit", "an integer from 1 to 50"),
        ("limit=51", "limit", "an integer from 1 to 50"),
        ("limit=ten", "limit", "an integer from 1 to 50"),
        ("specializations=Bad!", "specializations", "1 to 10 comma-separated specialization codes, e.g. dermatology,cosmetology"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor", "not a cursor this node gave out"),
        ("page=2", "page", "unknown field"),
    ],
)
async def test_bad_feed_queries_are_problems_naming_the_field(client: Any, settings: Settings, query: str, field: str, reason: str) -> None:
    doctor = await verified_doctor(client, settings)
    response = await client.get(f"/api/v1/feed?{query}", headers=doctor["headers"])
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [{"field": field, "source": "query", "reason": reason}]


async def test_a_signed_out_doctor_loses_the_feed_at_once(client: Any, settings: Settings) -> None:
    doctor = await verified_doctor(client, settings)
    assert (await client.get("/api/v1/feed", headers=doctor["headers"])).status_code == 200
    assert (await client.post("/api/v1/auth/sign-out", headers=doctor["headers"])).status_code == 204
    response = await client.get("/api/v1/feed", headers=doctor["headers"])
    assert (response.status_code, response.json()["detail"]) == (401, "this sign-in has ended; sign in again")
