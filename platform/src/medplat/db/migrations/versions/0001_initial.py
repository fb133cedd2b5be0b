"""Residency schemas; doctor (PERSONAL), content item (SHARED), worker heartbeat (NODE_LOCAL).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SCHEMAS = ("personal", "shared", "federation", "audit", "node")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column(
            "seen_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_heartbeat")),
        schema="node",
    )
    op.create_table(
        "doctor",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("home_region", sa.String(length=2), nullable=False),
        sa.Column("citizenship", sa.String(length=2), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("phone_lookup", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("email_lookup", sa.String(length=64), nullable=False),
        sa.Column("specializations", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("verification_status", sa.String(length=16), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doctor")),
        sa.UniqueConstraint("email_lookup", name=op.f("uq_doctor_email_lookup")),
        sa.UniqueConstraint("phone_lookup", name=op.f("uq_doctor_phone_lookup")),
        schema="personal",
    )
    op.create_table(
        "content_item",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("origin_region", sa.String(length=2), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("specializations", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("languages", postgresql.ARRAY(sa.String(length=2)), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_item")),
        schema="shared",
    )


def downgrade() -> None:
    op.drop_table("content_item", schema="shared")
    op.drop_table("doctor", schema="personal")
    op.drop_table("worker_heartbeat", schema="node")
