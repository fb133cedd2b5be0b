"""Doctors' profiles, consents, diplomas, profile changes, data-subject requests; one-time-code sign-in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "otp_outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("challenge_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("expires_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_outbox")),
        schema="node",
    )
    op.create_index(op.f("ix_node_otp_outbox_challenge_id"), "otp_outbox", ["challenge_id"], unique=False, schema="node")
    op.create_table(
        "data_subject_request",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("completed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_subject_request")),
        schema="personal",
    )
    op.create_index(
        op.f("ix_personal_data_subject_request_doctor_id"), "data_subject_request", ["doctor_id"], unique=False, schema="personal"
    )
    op.create_table(
        "sign_in_limit",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("window_start", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_limit")),
        schema="personal",
    )
    op.create_table(
        "consent",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("cross_border", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_consent_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint("doctor_id", "purpose", name=op.f("uq_consent_doctor_id")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_consent_doctor_id"), "consent", ["doctor_id"], unique=False, schema="personal")
    op.create_table(
        "diploma",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_diploma_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diploma")),
        sa.UniqueConstraint("doctor_id", name=op.f("uq_diploma_doctor_id")),
        schema="personal",
    )
    op.create_table(
        "otp_challenge",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address_key", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("consumed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_otp_challenge_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_challenge")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_otp_challenge_doctor_id"), "otp_challenge", ["doctor_id"], unique=False, schema="personal")
    op.create_table(
        "profile_change",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("reviewed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["personal.doctor.id"], name=op.f("fk_profile_change_doctor_id_doctor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_change")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_profile_change_doctor_id"), "profile_change", ["doctor_id"], unique=False, schema="personal")
    op.create_table(
        "sign_in_session",
        sa.Column("id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("doctor_id", advanced_alchemy.types.guid.GUID(length=16), nullable=False),
        sa.Column("refresh_jti", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["personal.doctor.id"], name=op.f("fk_sign_in_session_doctor_id_doctor"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_session")),
        schema="personal",
    )
    op.create_index(op.f("ix_personal_sign_in_session_doctor_id"), "sign_in_session", ["doctor_id"], unique=False, schema="personal")
    op.add_column("doctor", sa.Column("date_of_birth", sa.String(), nullable=True), schema="personal")
    op.add_column("doctor", sa.Column("academic_degree", sa.String(length=100), nullable=True), schema="personal")
    op.add_column("doctor", sa.Column("years_of_practice", sa.Integer(), nullable=True), schema="personal")
    op.add_column("doctor", sa.Column("position", sa.String(length=200), nullable=True), schema="personal")
    op.add_column(
        "doctor",
        sa.Column("workplaces", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema="personal",
    )
    op.add_column(
        "doctor",
        sa.Column("reception_schedule", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema="personal",
    )
    op.add_column("doctor", sa.Column("verification_reason", sa.String(length=500), nullable=True), schema="personal")
    op.add_column("doctor", sa.Column("verified_by", sa.String(length=100), nullable=True), schema="personal")
    op.add_column(
        "doctor", sa.Column("verified_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True), schema="personal"
    )
    # The default only fills the rows that exist; the application always writes both columns.
    op.alter_column("doctor", "workplaces", server_default=None, schema="personal")
    op.alter_column("doctor", "reception_schedule", server_default=None, schema="personal")


def downgrade() -> None:
    op.drop_column("doctor", "verified_at", schema="personal")
    op.drop_column("doctor", "verified_by", schema="personal")
    op.drop_column("doctor", "verification_reason", schema="personal")
    op.drop_column("doctor", "reception_schedule", schema="personal")
    op.drop_column("doctor", "workplaces", schema="personal")
    op.drop_column("doctor", "position", schema="personal")
    op.drop_column("doctor", "years_of_practice", schema="personal")
    op.drop_column("doctor", "academic_degree", schema="personal")
    op.drop_column("doctor", "date_of_birth", schema="personal")
    op.drop_index(op.f("ix_personal_sign_in_session_doctor_id"), table_name="sign_in_session", schema="personal")
    op.drop_table("sign_in_session", schema="personal")
    op.drop_index(op.f("ix_personal_profile_change_doctor_id"), table_name="profile_change", schema="personal")
    op.drop_table("profile_change", schema="personal")
    op.drop_index(op.f("ix_personal_otp_challenge_doctor_id"), table_name="otp_challenge", schema="personal")
    op.drop_table("otp_challenge", schema="personal")
    op.drop_table("diploma", schema="personal")
    op.drop_index(op.f("ix_personal_consent_doctor_id"), table_name="consent", schema="personal")
    op.drop_table("consent", schema="personal")
    op.drop_table("sign_in_limit", schema="personal")
    op.drop_index(op.f("ix_personal_data_subject_request_doctor_id"), table_name="data_subject_request", schema="personal")
    op.drop_table("data_subject_request", schema="personal")
    op.drop_index(op.f("ix_node_otp_outbox_challenge_id"), table_name="otp_outbox", schema="node")
    op.drop_table("otp_outbox", schema="node")
