"""Channel reset: the origin's unconfirmed reset statement, the target's permit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("channel_out", sa.Column("reset_envelope", sa.LargeBinary(), nullable=True), schema="federation")
    op.add_column(
        "channel_in",
        sa.Column("reset_allowed_until", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        schema="federation",
    )
    op.add_column("channel_in", sa.Column("reset_revert_from", sa.BigInteger(), nullable=True), schema="federation")


def downgrade() -> None:
    op.drop_column("channel_in", "reset_revert_from", schema="federation")
    op.drop_column("channel_in", "reset_allowed_until", schema="federation")
    op.drop_column("channel_out", "reset_envelope", schema="federation")
