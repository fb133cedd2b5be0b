"""Content versions, media and authors; the sync protocol's federation state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_in",
        sa.Column("origin", sa.String(length=2), nullable=False),
        sa.Column("received_sequence", sa.BigInteger(), nullable=False),
        sa.Column("received_hash", sa.String(length=64), nullable=False),
        sa.Column("applied_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_channel_in")),
        schema="federation",
    )
    op.create_table(
        "channel_out",
        sa.Column("target", sa.String(length=2), nullable=False),
        sa.Column("next_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("acked_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_channel_out")),
        schema="federation",
    )
    op.create_table(
        "manifest_in",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=2), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("manifest_hash", sa.String(length=64), nullable=False),
        sa.Column("in_chain", sa.Boolean(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("receipt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("received_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("decided_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifest_in")),
        schema="federation",
    )
    op.create_index(
        "uq_manifest_in_chain",
        "manifest_in",
        ["origin", "sequence"],
        unique=True,
        schema="federation",
        postgresql_where=sa.text("in_chain"),
    )
    op.create_table(
        "manifest_out",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=2), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("manifest_hash", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("receipt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("answered_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifest_out")),
        sa.UniqueConstraint("target", "sequence", name=op.f("uq_manifest_out_target")),
        schema="federation",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=2), nullable=False),
        sa.Column("item_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("manifest_sequence", sa.BigInteger(), nullable=True),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="federation",
    )
    op.create_index(op.f("ix_federation_outbox_item_id"), "outbox", ["item_id"], unique=False, schema="federation")
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["target", "id"],
        unique=False,
        schema="federation",
        postgresql_where=sa.text("manifest_sequence IS NULL"),
    )
    op.create_table(
        "verdict",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("item_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=2), nullable=False),
        sa.Column("target", sa.String(length=2), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdict")),
        schema="federation",
    )
    op.create_index(op.f("ix_federation_verdict_item_id"), "verdict", ["item_id"], unique=False, schema="federation")
    op.create_table(
        "content_author",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("item_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cross_border_consent", sa.Boolean(), nullable=False),
        sa.Column("consent_recorded_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["shared.content_item.id"], name=op.f("fk_content_author_item_id_content_item"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_author")),
        sa.UniqueConstraint("item_id", name=op.f("uq_content_author_item_id")),
        schema="personal",
    )
    op.create_table(
        "content_media",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("item_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["shared.content_item.id"], name=op.f("fk_content_media_item_id_content_item"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_media")),
        sa.UniqueConstraint("item_id", "sha256", name=op.f("uq_content_media_item_id")),
        schema="shared",
    )
    op.create_index(op.f("ix_shared_content_media_item_id"), "content_media", ["item_id"], unique=False, schema="shared")
    op.create_table(
        "content_version",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("item_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["shared.content_item.id"], name=op.f("fk_content_version_item_id_content_item"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_version")),
        sa.UniqueConstraint("item_id", "version", "op", name=op.f("uq_content_version_item_id")),
        schema="shared",
    )
    op.create_index(op.f("ix_shared_content_version_item_id"), "content_version", ["item_id"], unique=False, schema="shared")
    op.add_column("content_item", sa.Column("origin_only", sa.Boolean(), nullable=False, server_default=sa.false()), schema="shared")
    op.add_column("content_item", sa.Column("status", sa.String(length=16), nullable=False, server_default="draft"), schema="shared")
    op.add_column("content_item", sa.Column("draft", postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema="shared")
    op.add_column(
        "content_item", sa.Column("targets", postgresql.ARRAY(sa.String(length=2)), nullable=False, server_default="{}"), schema="shared"
    )


def downgrade() -> None:
    op.drop_column("content_item", "targets", schema="shared")
    op.drop_column("content_item", "draft", schema="shared")
    op.drop_column("content_item", "status", schema="shared")
    op.drop_column("content_item", "origin_only", schema="shared")
    op.drop_index(op.f("ix_shared_content_version_item_id"), table_name="content_version", schema="shared")
    op.drop_table("content_version", schema="shared")
    op.drop_index(op.f("ix_shared_content_media_item_id"), table_name="content_media", schema="shared")
    op.drop_table("content_media", schema="shared")
    op.drop_table("content_author", schema="personal")
    op.drop_index(op.f("ix_federation_verdict_item_id"), table_name="verdict", schema="federation")
    op.drop_table("verdict", schema="federation")
    op.drop_index("ix_outbox_pending", table_name="outbox", schema="federation", postgresql_where=sa.text("manifest_sequence IS NULL"))
    op.drop_index(op.f("ix_federation_outbox_item_id"), table_name="outbox", schema="federation")
    op.drop_table("outbox", schema="federation")
    op.drop_table("manifest_out", schema="federation")
    op.drop_index("uq_manifest_in_chain", table_name="manifest_in", schema="federation", postgresql_where=sa.text("in_chain"))
    op.drop_table("manifest_in", schema="federation")
    op.drop_table("channel_out", schema="federation")
    op.drop_table("channel_in", schema="federation")
