"""The doctors' feed index; clinical cases and their photos; event registrations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

GUID = advanced_alchemy.types.guid.GUID
UTC = advanced_alchemy.types.datetime.DateTimeUTC


def _audit() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_index(
        "ix_shared_content_item_feed",
        "content_item",
        ["updated_at", "id"],
        unique=False,
        schema="shared",
        postgresql_include=["version", "kind", "category", "title", "languages", "specializations"],
        postgresql_where=sa.text("status = 'published'"),
    )
    op.create_table(
        "clinical_case",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("doctor_id", GUID(length=16), nullable=False),
        sa.Column("sex", sa.String(length=8), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("condition", sa.String(length=200), nullable=False),
        sa.Column("recommendations", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("reviewed_at", UTC(timezone=True), nullable=True),
        *_audit(),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_clinical_case_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_case")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_clinical_case_doctor_id"), "clinical_case", ["doctor_id"], unique=False, schema="personal")
    op.create_index("ix_personal_clinical_case_status_created", "clinical_case", ["status", "created_at"], unique=False, schema="personal")
    op.create_table(
        "case_photo",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("case_id", GUID(length=16), nullable=False),
        sa.Column("doctor_id", GUID(length=16), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["case_id"], ["personal.clinical_case.id"], name=op.f("fk_case_photo_case_id_clinical_case"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_case_photo_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photo")),
        sa.UniqueConstraint("case_id", "stage", name=op.f("uq_case_photo_case_id")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_case_photo_doctor_id"), "case_photo", ["doctor_id"], unique=False, schema="personal")
    op.create_table(
        "event_registration",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("doctor_id", GUID(length=16), nullable=False),
        sa.Column("item_id", GUID(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("registered_at", UTC(timezone=True), nullable=False),
        sa.Column("cancelled_at", UTC(timezone=True), nullable=True),
        sa.Column("attended_at", UTC(timezone=True), nullable=True),
        sa.Column("marked_by", sa.String(length=100), nullable=True),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["personal.doctor.id"], name=op.f("fk_event_registration_doctor_id_doctor"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["shared.content_item.id"], name=op.f("fk_event_registration_item_id_content_item"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_registration")),
        sa.UniqueConstraint("doctor_id", "item_id", name=op.f("uq_event_registration_doctor_id")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_event_registration_item_id"), "event_registration", ["item_id"], unique=False, schema="personal")


def downgrade() -> None:
    op.drop_table("event_registration", schema="personal")
    op.drop_table("case_photo", schema="personal")
    op.drop_table("clinical_case", schema="personal")
    op.drop_index("ix_shared_content_item_feed", table_name="content_item", schema="shared")
