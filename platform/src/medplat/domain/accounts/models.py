"""A doctor's account on their home node: profile, consents, diploma, moderation, sign-in and data-subject requests.

Everything here is PERSONAL (schema `personal`) except the one-time-code outbox of the local sender, which
is NODE_LOCAL and holds no person: a challenge id, the code and its expiry.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from medplat.db.base import Base, Entity
from medplat.fields import encrypted
from medplat.residency import DataCategory, LegalBasis, Residency, Retention

UNTIL_ERASURE = Retention("while the account exists; deleted with it on erasure (DSR) or account closure")
DSR_EVIDENCE = Retention("3 years after completion, as evidence of the request and its answer", days=3 * 365)
LIMIT_WINDOW = Retention("until the limit's window ends (at most one day); keyed hashes only", days=1)
AUTHOR = Retention("while the content item exists on its origin, or until the author withdraws consent")


class Doctor(Entity):
    """A doctor registered on this node. Home region follows citizenship; phone, e-mail, date of birth and the
    national id are encrypted at rest, with keyed hashes beside phone and e-mail (sign-in lookups) and the
    national id (one account per person)."""

    __tablename__ = "doctor"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.IDENTITY
    __legal_basis__ = LegalBasis.CONTRACT
    __retention__ = UNTIL_ERASURE

    home_region: Mapped[str] = mapped_column(String(2))
    citizenship: Mapped[str] = mapped_column(String(2))
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(encrypted(32))
    phone_lookup: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(encrypted(254))
    email_lookup: Mapped[str] = mapped_column(String(64), unique=True)
    date_of_birth: Mapped[str | None] = mapped_column(encrypted(10), nullable=True)
    """ISO date (YYYY-MM-DD), encrypted; no lookup needs it."""
    national_id: Mapped[str | None] = mapped_column(encrypted(14), nullable=True)
    """The citizenship's personal number (RU SNILS, KZ IIN, UZ PINFL), digits only, encrypted; optional."""
    national_id_lookup: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    """Keyed hash of `<citizenship>:<digits>`: one account per person and node."""
    specializations: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    academic_degree: Mapped[str | None] = mapped_column(String(100), nullable=True)
    years_of_practice: Mapped[int | None] = mapped_column(Integer, nullable=True)
    position: Mapped[str | None] = mapped_column(String(200), nullable=True)
    workplaces: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    """[{"name": ..., "city": ...}]"""
    reception_schedule: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    """[{"weekday": "mon", "start": "09:00", "end": "13:00", "workplace": 0}]"""
    verification_status: Mapped[str] = mapped_column(String(16), default="unverified")
    """unverified (no diploma yet), pending (diploma awaiting a moderator), verified, rejected."""
    verification_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    verified_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    verified_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class Consent(Entity):
    """One consent of a doctor, per purpose, with whether it covers transfer abroad (KZ law 94-V art. 12)."""

    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("doctor_id", "purpose"), {"schema": "personal"})
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CONSENT
    __legal_basis__ = LegalBasis.LEGAL_OBLIGATION
    __retention__ = UNTIL_ERASURE

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    cross_border: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class Diploma(Entity):
    """The doctor's current diploma scan in the node's personal bucket (one per doctor; a new upload replaces it)."""

    __tablename__ = "diploma"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.PROFESSIONAL
    __legal_basis__ = LegalBasis.CONTRACT
    __retention__ = UNTIL_ERASURE

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), unique=True)
    key: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class ProfileChange(Entity):
    """A change to a doctor's professional profile, asked for by a medical representative or the doctor, that a
    moderator approves (and it is applied) or rejects with a reason."""

    __tablename__ = "profile_change"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.PROFESSIONAL
    __legal_basis__ = LegalBasis.CONTRACT
    __retention__ = UNTIL_ERASURE

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    requested_by: Mapped[str] = mapped_column(String(100))
    """The token subject of who asked: a moderator's staff subject, or the doctor's own id."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, approved, rejected."""
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reviewed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


DSR_STATUSES = ("received", "completed", "rejected")
"""Every status a data-subject request can have."""


class DataSubjectRequest(Entity):
    """A data-subject request (access, rectification or erasure) as recorded for compliance.

    `doctor_id` is deliberately not a foreign key: the record outlives the erasure it documents. `due_on` is
    the deadline of the node's country in working days (medplat.compliance.deadlines); `extended_due_on` is
    set when the law allows an extension and a reasoned notice was sent.
    """

    __tablename__ = "data_subject_request"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CONSENT
    __legal_basis__ = LegalBasis.LEGAL_OBLIGATION
    __retention__ = DSR_EVIDENCE

    doctor_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """access, rectification or erasure."""
    status: Mapped[str] = mapped_column(String(16), default="received")
    """received, completed, or rejected (a rectification a moderator refused, with a reason)."""
    requested_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    due_on: Mapped[datetime.date] = mapped_column(Date)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    extended_due_on: Mapped[datetime.date | None] = mapped_column(Date, nullable=True)
    change_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    """For a rectification: the profile change that carries it."""
    reminder: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The last reminder recorded: due_soon or overdue."""
    reminded_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class OtpChallenge(Entity):
    """One one-time code sent to a doctor's phone or e-mail. Only a keyed hash of the code is kept."""

    __tablename__ = "otp_challenge"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CREDENTIAL
    __legal_basis__ = LegalBasis.LEGITIMATE_INTEREST
    __retention__ = UNTIL_ERASURE

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    """sms or email."""
    address_key: Mapped[str] = mapped_column(String(64))
    """The keyed hash of the phone or e-mail the code went to (what the lock-out counts against)."""
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class SignInSession(Entity):
    """A signed-in doctor's refresh-token family: one row per sign-in, rotated on every refresh.

    Only the id of the newest refresh token is kept; a refresh token of the family that is not the newest is
    a reuse, and revokes the whole family.
    """

    __tablename__ = "sign_in_session"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CREDENTIAL
    __legal_basis__ = LegalBasis.LEGITIMATE_INTEREST
    __retention__ = UNTIL_ERASURE

    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("personal.doctor.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    refreshed_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """signed-out, refresh-reused or erased."""


class SignInLimit(Base):
    """A fixed-window counter for one sign-in limit (codes per address or IP, tries per IP, wrong codes per address).

    Keys are keyed hashes of the address or IP, never the value itself.
    """

    __tablename__ = "sign_in_limit"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CREDENTIAL
    __legal_basis__ = LegalBasis.LEGITIMATE_INTEREST
    __retention__ = LIMIT_WINDOW

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    hits: Mapped[int] = mapped_column(Integer)


class OtpOutbox(Base):
    """Codes the local sender 'sent': what the local federation shows instead of an SMS or an e-mail.

    It names no person (the challenge id is meaningless without `personal.otp_challenge`); the code is the
    only secret in it and the row is useless after `expires_at`.
    """

    __tablename__ = "otp_outbox"
    __table_args__ = {"schema": "node"}
    __residency__ = Residency.NODE_LOCAL
    __data_category__ = DataCategory.CREDENTIAL

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    challenge_id: Mapped[uuid.UUID] = mapped_column(index=True)
    channel: Mapped[str] = mapped_column(String(8))
    code: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))


class ContentAuthor(Entity):
    """The author shown as an item's byline, with their consent to cross-border transfer of it."""

    __tablename__ = "content_author"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.CONSENT
    __legal_basis__ = LegalBasis.CONSENT
    __retention__ = AUTHOR

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shared.content_item.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    cross_border_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_recorded_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
