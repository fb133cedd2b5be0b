"""A doctor's national id (RU SNILS, KZ IIN, UZ PINFL): encrypted, with a keyed hash that keeps it unique.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("doctor", sa.Column("national_id", sa.String(), nullable=True), schema="personal")
    op.add_column("doctor", sa.Column("national_id_lookup", sa.String(length=64), nullable=True), schema="personal")
    op.create_unique_constraint(op.f("uq_doctor_national_id_lookup"), "doctor", ["national_id_lookup"], schema="personal")


def downgrade() -> None:
    op.drop_constraint(op.f("uq_doctor_national_id_lookup"), "doctor", schema="personal", type_="unique")
    op.drop_column("doctor", "national_id_lookup", schema="personal")
    op.drop_column("doctor", "national_id", schema="personal")
