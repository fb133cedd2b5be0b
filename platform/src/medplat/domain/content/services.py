"""The editor's side of shared content: drafts, media, preview, publish, retract, delivery status.

Publishing writes the new version and one outbox row per accepted target in ONE transaction (the
transactional outbox); the sync workers deliver from the outbox. Every verdict, accepted or not, is
recorded with its reasons; a publish's verdicts are also one `policy_verdict` leaf of the audit log.
"""

from __future__ import annotations

import datetime
import hashlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from medplat.api.problems import Problem
from medplat.audit import log as audit
from medplat.audit.log import AuditKind
from medplat.config import Settings, known_regions
from medplat.domain.accounts.models import ContentAuthor
from medplat.domain.content.models import ContentItem, ContentMedia, ContentVersion
from medplat.domain.content.schemas import DraftCreate, DraftUpdate
from medplat.storage import CONTENT_MEDIA, ObjectStore
from medsync.canonical import canonical_bytes, sha256_hex
from medsync.items import Blob, Byline, EventInfo, Lesson, SharedDocument, Text, from_builtins, to_builtins
from medsync.models import OutboxRow, Verdict
from medsync.policy import Verdict as PolicyVerdict
from medsync.policy import preview

_log = structlog.stdlib.get_logger("medplat.content")

MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "application/pdf", "video/mp4"})
MAX_MEDIA_BYTES = 200 * 1024 * 1024


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict"


Wake = Callable[[Sequence[str]], Awaitable[None]]
"""Tells the sync workers that outbox rows for these targets were committed (the beat sweep is the backstop)."""


@dataclass(frozen=True)
class PublishOutcome:
    item_id: uuid.UUID
    version: int
    verdicts: dict[str, PolicyVerdict]


def shared_document(item: ContentItem, author: ContentAuthor | None, media: Sequence[ContentMedia]) -> SharedDocument:
    """The serializer: the only way an item becomes something that may leave the node.

    It copies SHARED fields one by one into the allow-list shape; the author (PERSONAL) contributes a
    byline only when their consent to cross-border transfer is on record, and nothing else.
    """
    draft = item.draft or {}
    texts = msgspec.convert(draft.get("texts", []), tuple[Text, ...])
    consented = author is not None and author.cross_border_consent
    return SharedDocument(
        kind=item.kind,  # type: ignore[arg-type]
        category=item.category,
        specializations=tuple(item.specializations),
        languages=tuple(sorted({t.language for t in texts})),
        texts=texts,
        origin_only=item.origin_only,
        byline=Byline(name=author.name, cross_border_consent=True) if consented and author is not None else None,
        lessons=msgspec.convert(draft.get("lessons", []), tuple[Lesson, ...]),
        event=msgspec.convert(draft["event"], EventInfo) if draft.get("event") else None,
        blobs=tuple(Blob(key=m.key, sha256=m.sha256, length=m.length, media_type=m.media_type) for m in media),
    )


def tombstone_hash(item_id: uuid.UUID, version: int) -> str:
    return sha256_hex(canonical_bytes({"id": str(item_id), "op": "tombstone", "version": version}))


class ContentService:
    """Content on its origin node. Methods flush; `publish` and `retract` commit themselves (outbox)."""

    def __init__(self, session: AsyncSession, settings: Settings, store: ObjectStore, wake: Wake | None = None) -> None:
        self.session = session
        self.settings = settings
        self.store = store
        self.region = settings.region.code
        self.wake = wake

    # -- drafts ---------------------------------------------------------------------------------------

    def _check_targets(self, targets: Sequence[str]) -> list[str]:
        known = set(known_regions())
        bad = [t for t in targets if t not in known or t == self.region]
        if bad:
            reason = "unknown region or this node itself"
            raise Problem(
                f"targets: {', '.join(bad)}: {reason}", status=422, slug="invalid-field", title="Invalid field",
                errors=[{"field": "targets", "reason": f"{t}: {reason}"} for t in bad],
            )  # fmt: skip
        return sorted(set(targets))

    @staticmethod
    def _draft_body(data: DraftCreate | DraftUpdate, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """The draft's content fields (the byline lives in personal.content_author, the targets on the item)."""
        body = dict(current or {})
        for field in ("kind", "category", "texts", "specializations", "origin_only", "lessons", "event"):
            value = getattr(data, field, None)
            if value is not None:
                body[field] = msgspec.to_builtins(value)
        return body

    async def create_draft(self, data: DraftCreate) -> ContentItem:
        languages = sorted({t.language for t in data.texts})
        item = ContentItem(
            origin_region=self.region,
            kind=data.kind,
            title=data.texts[0].title,
            category=data.category,
            specializations=sorted(set(data.specializations)),
            languages=languages,
            origin_only=data.origin_only,
            status="draft",
            version=0,
            draft=self._draft_body(data),
            targets=self._check_targets(data.targets),
        )
        self.session.add(item)
        await self.session.flush()
        if data.byline is not None:
            self.session.add(
                ContentAuthor(
                    item_id=item.id,
                    name=data.byline.name,
                    cross_border_consent=data.byline.cross_border_consent,
                    consent_recorded_at=_now() if data.byline.cross_border_consent else None,
                )
            )
            await self.session.flush()
        _log.info("content.draft_created", item_id=str(item.id), kind=item.kind)
        return item

    async def get(self, item_id: uuid.UUID, *, for_update: bool = False) -> ContentItem:
        query = select(ContentItem).where(ContentItem.id == item_id)
        if for_update:
            query = query.with_for_update()
        item = await self.session.scalar(query)
        if item is None:
            raise NotFound("no content item with this id on this node")
        return item

    async def own(self, item_id: uuid.UUID, *, for_update: bool = False) -> ContentItem:
        item = await self.get(item_id, for_update=for_update)
        if item.origin_region != self.region:
            raise Conflict(f"this item originates on the {item.origin_region} node; edit it there")
        return item

    async def update_draft(self, item_id: uuid.UUID, data: DraftUpdate) -> ContentItem:
        item = await self.own(item_id, for_update=True)
        item.draft = self._draft_body(data, item.draft)
        if data.texts is not None:
            item.title = data.texts[0].title
            item.languages = sorted({t.language for t in data.texts})
        if data.category is not None:
            item.category = data.category
        if data.specializations is not None:
            item.specializations = sorted(set(data.specializations))
        if data.origin_only is not None:
            item.origin_only = data.origin_only
        if data.targets is not None:
            item.targets = self._check_targets(data.targets)
        if data.byline is not None:
            author = await self.session.scalar(select(ContentAuthor).where(ContentAuthor.item_id == item.id))
            if author is None:
                author = ContentAuthor(item_id=item.id, name=data.byline.name)
                self.session.add(author)
            author.name = data.byline.name
            author.cross_border_consent = data.byline.cross_border_consent
            author.consent_recorded_at = _now() if data.byline.cross_border_consent else None
        await self.session.flush()
        return item

    async def set_targets(self, item_id: uuid.UUID, targets: Sequence[str]) -> ContentItem:
        item = await self.own(item_id, for_update=True)
        item.targets = self._check_targets(targets)
        await self.session.flush()
        return item

    # -- media ------------------------------------------------------------------------------------------

    async def attach_media(self, item_id: uuid.UUID, media_type: str, chunks: AsyncIterator[bytes]) -> ContentMedia:
        """Stream an upload to a temporary file (hashing it), refuse it past the limit, then store it."""
        item = await self.own(item_id)
        if media_type not in MEDIA_TYPES:
            raise Problem(
                f"media type {media_type!r} is not accepted; use one of {', '.join(sorted(MEDIA_TYPES))}",
                status=415, slug="unsupported-media-type", title="Unsupported media type",
            )  # fmt: skip
        digest = hashlib.sha256()
        length = 0
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            async for chunk in chunks:
                length += len(chunk)
                if length > MAX_MEDIA_BYTES:
                    raise Problem(f"media files are limited to {MAX_MEDIA_BYTES} bytes", status=413, slug="too-large", title="Too large")
                digest.update(chunk)
                spool.write(chunk)
            if length == 0:
                raise Problem("the upload is empty", status=400, slug="validation", title="Invalid request")
            sha = digest.hexdigest()
            existing = await self.session.scalar(select(ContentMedia).where(ContentMedia.item_id == item.id, ContentMedia.sha256 == sha))
            if existing is not None:
                return existing
            key = CONTENT_MEDIA.key(str(item.id), sha)
            spool.seek(0)
            await anyio.to_thread.run_sync(self.store.put, self.settings.shared_bucket, key, spool, length, media_type)
        media = ContentMedia(item_id=item.id, key=key, sha256=sha, length=length, media_type=media_type)
        self.session.add(media)
        await self.session.flush()
        _log.info("content.media_attached", item_id=str(item.id), bytes=length, media_type=media_type)
        return media

    async def media_of(self, item_id: uuid.UUID) -> list[ContentMedia]:
        rows = await self.session.scalars(select(ContentMedia).where(ContentMedia.item_id == item_id).order_by(ContentMedia.created_at))
        return list(rows)

    # -- the document that may leave --------------------------------------------------------------------

    async def document(self, item: ContentItem) -> SharedDocument:
        """The allow-listed document of the current draft (see `shared_document`)."""
        author = await self.session.scalar(select(ContentAuthor).where(ContentAuthor.item_id == item.id))
        return shared_document(item, author, await self.media_of(item.id))

    async def preview(self, item_id: uuid.UUID, targets: Sequence[str] | None = None) -> dict[str, PolicyVerdict]:
        """What each target would say. Recorded as verdict rows but not logged: a preview decides nothing, and
        the same rules are judged again, and logged, at publish and at send (docs/audit.md)."""
        item = await self.own(item_id)
        chosen = self._check_targets(targets) if targets else list(item.targets)
        document = await self.document(item)
        verdicts = preview(document, origin=self.region, targets=chosen)
        for target, verdict in verdicts.items():
            self._record_verdict(item.id, item.version + 1, target, "preview", verdict)
        await self.session.flush()
        return verdicts

    def _record_verdict(self, item_id: uuid.UUID, version: int, target: str, stage: str, verdict: PolicyVerdict) -> None:
        self.session.add(
            Verdict(
                item_id=item_id,
                version=version,
                origin=self.region,
                target=target,
                stage=stage,
                accepted=verdict.accepted,
                reasons=[{"code": r.code, "message": r.message} for r in verdict.reasons],
            )
        )

    # -- publish and retract ----------------------------------------------------------------------------

    async def publish(self, item_id: uuid.UUID) -> PublishOutcome:
        item = await self.own(item_id, for_update=True)
        document = await self.document(item)
        data = to_builtins(document)
        body = canonical_bytes(data)
        version = item.version + 1
        verdicts = preview(document, origin=self.region, targets=list(item.targets))
        self.session.add(
            ContentVersion(item_id=item.id, version=version, op="upsert", document=data, content_hash=sha256_hex(body), created_at=_now())
        )
        item.version = version
        item.status = "published"
        for target, verdict in verdicts.items():
            self._record_verdict(item.id, version, target, "publish", verdict)
            if verdict.accepted:
                self.session.add(OutboxRow(target=target, item_id=item.id, version=version, op="upsert"))
        if verdicts:
            # One leaf for the call, whatever the number of targets: appends serialise on the log's lock.
            leaf = {
                "stage": "publish", "item_id": str(item.id), "version": version,
                "verdicts": [{"target": t, "accepted": v.accepted, "codes": v.codes()} for t, v in sorted(verdicts.items())],
            }  # fmt: skip
            await self.session.run_sync(lambda session: audit.append(session, AuditKind.POLICY_VERDICT, leaf))
        await self.session.commit()
        accepted = sorted(t for t, v in verdicts.items() if v.accepted)
        await self._wake(accepted)
        _log.info(
            "content.published", item_id=str(item.id), version=version, targets=accepted, refused=sorted(set(verdicts) - set(accepted))
        )
        return PublishOutcome(item.id, version, verdicts)

    async def retract(self, item_id: uuid.UUID, regions: Sequence[str] | None = None) -> list[str]:
        """Tombstone the item in `regions` (default: everywhere it was sent, and on this node)."""
        item = await self.own(item_id, for_update=True)
        if item.status == "draft":
            raise Conflict("a draft was never published; there is nothing to retract")
        sent = set(
            (await self.session.scalars(select(OutboxRow.target).where(OutboxRow.item_id == item.id, OutboxRow.op == "upsert"))).all()
        )
        chosen = sorted(sent) if regions is None else self._check_targets(regions)
        everywhere = regions is None
        if everywhere:
            item.version += 1
            item.status = "retracted"
            self.session.add(
                ContentVersion(
                    item_id=item.id, version=item.version, op="tombstone", document=None,
                    content_hash=tombstone_hash(item.id, item.version), created_at=_now(),
                )
            )  # fmt: skip
        item.targets = sorted(set(item.targets) - set(chosen))
        for target in chosen:
            self.session.add(OutboxRow(target=target, item_id=item.id, version=item.version, op="tombstone"))
        await self.session.commit()
        await self._wake(chosen)
        _log.info("content.retracted", item_id=str(item.id), version=item.version, regions=chosen, everywhere=everywhere)
        return chosen

    async def _wake(self, targets: Sequence[str]) -> None:
        if self.wake is None or not targets:
            return
        try:
            await self.wake(targets)
        except Exception as exc:  # noqa: BLE001 - the rows are committed; the beat sweep delivers them anyway
            _log.warning("sync.wake_failed", targets=list(targets), error=type(exc).__name__)

    # -- delivery status --------------------------------------------------------------------------------

    async def deliveries(self, item_id: uuid.UUID) -> list[OutboxRow]:
        """The newest outbox row per target for the item."""
        await self.get(item_id)
        newest = (
            select(OutboxRow.target, func.max(OutboxRow.id).label("id"))
            .where(OutboxRow.item_id == item_id)
            .group_by(OutboxRow.target)
            .subquery()
        )
        rows = await self.session.scalars(select(OutboxRow).join(newest, OutboxRow.id == newest.c.id).order_by(OutboxRow.target))
        return list(rows)

    async def refused_at_publish(self, item_id: uuid.UUID, version: int) -> list[Verdict]:
        rows = await self.session.scalars(
            select(Verdict).where(
                Verdict.item_id == item_id, Verdict.version == version, Verdict.stage == "publish", Verdict.accepted.is_(False)
            )
        )
        return list(rows)


def document_of(version: ContentVersion) -> SharedDocument | None:
    return from_builtins(version.document) if version.document is not None else None
