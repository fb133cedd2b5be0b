"""Data-subject requests tracked to each country's deadline: extension, rectification link, reminders; compliance runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("data_subject_request", sa.Column("extended_due_on", sa.Date(), nullable=True), schema="personal")
    op.add_column("data_subject_request", sa.Column("change_id", sa.Uuid(), nullable=True), schema="personal")
    op.add_column("data_subject_request", sa.Column("reminder", sa.String(length=16), nullable=True), schema="personal")
    op.add_column(
        "data_subject_request",
        sa.Column("reminded_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        schema="personal",
    )
    op.create_table(
        "compliance_run",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_run")),
        schema="node",
    )


def downgrade() -> None:
    op.drop_table("compliance_run", schema="node")
    for column in ("reminded_at", "reminder", "change_id", "extended_due_on"):
        op.drop_column("data_subject_request", column, schema="personal")
