"""The tamper-evident audit log: leaves, subtree hashes, signed checkpoints, cosignatures; append-only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("leaf", "tree_node", "checkpoint", "cosignature", "peer_checkpoint")


def upgrade() -> None:
    op.create_table(
        "leaf",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("logged_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_leaf")),
        schema="audit",
    )
    op.create_index(op.f("ix_audit_leaf_kind"), "leaf", ["kind"], unique=False, schema="audit")
    op.create_table(
        "tree_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_tree_node")),
        schema="audit",
    )
    op.create_table(
        "checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoint")),
        schema="audit",
    )
    op.create_table(
        "cosignature",
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("cosigner", sa.String(length=2), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("received_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["size"], ["audit.checkpoint.size"], name=op.f("fk_cosignature_size_checkpoint")),
        sa.PrimaryKeyConstraint("size", "cosigner", name=op.f("pk_cosignature")),
        schema="audit",
    )
    op.create_table(
        "peer_checkpoint",
        sa.Column("origin", sa.String(length=2), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("cosigned_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", "size", name=op.f("pk_peer_checkpoint")),
        schema="audit",
    )
    # Append-only for every role, the owner included. TRUNCATE is left to the owner (test teardown); what a
    # superuser does around the trigger, the Merkle tree and the signed checkpoints show (`medfed audit verify`).
    op.execute(
        """
        CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit.% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.{table} FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER append_only ON audit.{table}")
    op.execute("DROP FUNCTION audit.refuse_change()")
    op.drop_table("peer_checkpoint", schema="audit")
    op.drop_table("cosignature", schema="audit")
    op.drop_table("checkpoint", schema="audit")
    op.drop_table("tree_node", schema="audit")
    op.drop_index(op.f("ix_audit_leaf_kind"), table_name="leaf", schema="audit")
    op.drop_table("leaf", schema="audit")
