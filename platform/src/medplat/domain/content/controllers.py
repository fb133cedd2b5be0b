"""The editor API: drafts, media, targets, preview, publish, retract and delivery status per region."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.config import Settings
from medplat.domain.content.models import ContentItem
from medplat.domain.content.schemas import (
    DeliveryRead,
    DraftCreate,
    DraftUpdate,
    ItemRead,
    MediaRead,
    PublishResult,
    ReasonRead,
    Targets,
    VerdictRead,
)
from medplat.domain.content.services import MAX_MEDIA_BYTES, ContentService
from medplat.security import Role, roles
from medsync.items import Text
from medsync.policy import Verdict as PolicyVerdict

# The outbox's `sent` means signed into a manifest the target has not taken yet: still pending for an editor.
DELIVERY_STATUS = {"pending": "pending", "sent": "pending", "delivered": "delivered", "applied": "applied", "rejected": "rejected"}


class RetractRequest(msgspec.Struct, forbid_unknown_fields=True):
    regions: tuple[str, ...] | None = None
    """Regions to retract from; omitted means everywhere (and on this node)."""


def verdict_read(target: str, verdict: PolicyVerdict) -> VerdictRead:
    return VerdictRead(target=target, accepted=verdict.accepted, reasons=[ReasonRead(r.code, r.message) for r in verdict.reasons])


async def item_read(service: ContentService, item: ContentItem) -> ItemRead:
    media = await service.media_of(item.id)
    texts = msgspec.convert((item.draft or {}).get("texts", []), list[Text])
    return ItemRead(
        id=item.id, origin_region=item.origin_region, kind=item.kind, category=item.category, title=item.title,
        languages=list(item.languages), specializations=list(item.specializations), status=item.status,
        version=item.version, origin_only=item.origin_only, targets=list(item.targets),
        media=[MediaRead(m.key, m.sha256, m.length, m.media_type) for m in media], updated_at=item.updated_at, texts=texts,
    )  # fmt: skip


def provide_content_service(db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings], state: State) -> ContentService:
    return ContentService(db_session, settings, state.object_store, wake=state.wake_delivery)


class ContentController(Controller):
    path = "/api/v1/content"
    tags = ["content"]
    guards = [roles(Role.EDITOR)]

    dependencies = {"service": Provide(provide_content_service, sync_to_thread=False)}

    @post("/", status_code=HTTP_201_CREATED, summary="Create a draft (this node becomes its origin)")
    async def create(self, data: JSONBody[DraftCreate], service: NamedDependency[ContentService]) -> ItemRead:
        return await item_read(service, await service.create_draft(data))

    @get("/{item_id:uuid}", summary="An item, as this node holds it")
    async def read(self, item_id: FromPath[uuid.UUID], service: NamedDependency[ContentService]) -> ItemRead:
        return await item_read(service, await service.get(item_id))

    @patch("/{item_id:uuid}", summary="Edit a draft")
    async def update(self, item_id: FromPath[uuid.UUID], data: JSONBody[DraftUpdate], service: NamedDependency[ContentService]) -> ItemRead:
        return await item_read(service, await service.update_draft(item_id, data))

    @put("/{item_id:uuid}/targets", summary="Choose the regions to publish to")
    async def targets(self, item_id: FromPath[uuid.UUID], data: JSONBody[Targets], service: NamedDependency[ContentService]) -> ItemRead:
        return await item_read(service, await service.set_targets(item_id, data.targets))

    @put(
        "/{item_id:uuid}/media",
        status_code=HTTP_201_CREATED,
        summary="Attach a file (the raw body; its Content-Type is the media type)",
        request_max_body_size=MAX_MEDIA_BYTES,
    )
    async def media(
        self, item_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], service: NamedDependency[ContentService]
    ) -> MediaRead:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        media = await service.attach_media(item_id, media_type, request.stream())
        return MediaRead(media.key, media.sha256, media.length, media.media_type)

    @post("/{item_id:uuid}/preview", status_code=HTTP_200_OK, summary="What each target's rules would say now")
    async def preview(
        self, item_id: FromPath[uuid.UUID], service: NamedDependency[ContentService], targets: FromQuery[str | None] = None
    ) -> list[VerdictRead]:
        chosen = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
        verdicts = await service.preview(item_id, chosen)
        return [verdict_read(t, v) for t, v in sorted(verdicts.items())]

    @post("/{item_id:uuid}/publish", status_code=HTTP_200_OK, summary="Publish the draft to its targets")
    async def publish(self, item_id: FromPath[uuid.UUID], service: NamedDependency[ContentService]) -> PublishResult:
        outcome = await service.publish(item_id)
        return PublishResult(outcome.item_id, outcome.version, [verdict_read(t, v) for t, v in sorted(outcome.verdicts.items())])

    @post("/{item_id:uuid}/retract", status_code=HTTP_200_OK, summary="Retract from some regions or everywhere")
    async def retract(
        self, item_id: FromPath[uuid.UUID], data: JSONBody[RetractRequest], service: NamedDependency[ContentService]
    ) -> list[str]:
        regions = await service.retract(item_id, data.regions)
        return regions

    @get("/{item_id:uuid}/deliveries", summary="Delivery status per region")
    async def deliveries(self, item_id: FromPath[uuid.UUID], service: NamedDependency[ContentService]) -> list[DeliveryRead]:
        item = await service.get(item_id)
        rows = [
            DeliveryRead(
                r.target,
                r.version,
                r.op,
                DELIVERY_STATUS.get(r.status, r.status),
                [ReasonRead(x["code"], x["message"]) for x in r.reasons],
                r.updated_at,
            )
            for r in await service.deliveries(item_id)
        ]
        for verdict in await service.refused_at_publish(item_id, item.version):
            rows.append(
                DeliveryRead(
                    verdict.target,
                    verdict.version,
                    "upsert",
                    "refused",
                    [ReasonRead(x["code"], x["message"]) for x in verdict.reasons],
                    verdict.created_at,
                )
            )
        return sorted(rows, key=lambda r: r.target)
