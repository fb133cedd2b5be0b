"""Notifications for the hot read paths' per-process caches (medplat.domain.feed.live).

Every change to what the role guard and the feed read on each request sends a NOTIFY on `medplat_live` in the
same transaction, so it is delivered when, and only if, the change commits: a sign-in session (`s:<id>`), a
doctor's verification status or specializations (`d:<id>`), shared content (`f`, once per statement);
`s:*` and `d:*` after a TRUNCATE. Triggers rather than NOTIFY calls in the services: the sync apply, the
erasure's cascades, moderators' and operators' SQL all reach these tables, and none of them can forget.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CHANNEL = "medplat_live"

ROW_FUNCTION = f"""
CREATE FUNCTION node.live_notify_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || OLD.id::text);
    ELSE
        PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || NEW.id::text);
    END IF;
    RETURN NULL;
END
$$
"""

STATEMENT_FUNCTION = f"""
CREATE FUNCTION node.live_notify_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_ARGV[0]);
    RETURN NULL;
END
$$
"""

TRIGGERS = [
    ("personal.sign_in_session", "live_session", "AFTER INSERT OR UPDATE OF revoked_at, doctor_id OR DELETE", "ROW", "node.live_notify_row('s')"),
    ("personal.sign_in_session", "live_session_truncate", "AFTER TRUNCATE", "STATEMENT", "node.live_notify_statement('s:*')"),
    ("personal.doctor", "live_doctor", "AFTER INSERT OR UPDATE OF verification_status, specializations OR DELETE", "ROW", "node.live_notify_row('d')"),
    ("personal.doctor", "live_doctor_truncate", "AFTER TRUNCATE", "STATEMENT", "node.live_notify_statement('d:*')"),
    ("shared.content_item", "live_feed", "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE", "STATEMENT", "node.live_notify_statement('f')"),
    ("shared.content_version", "live_feed", "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE", "STATEMENT", "node.live_notify_statement('f')"),
]  # fmt: skip


def upgrade() -> None:
    op.execute(ROW_FUNCTION)
    op.execute(STATEMENT_FUNCTION)
    for table, name, events, level, call in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {events} ON {table} FOR EACH {level} EXECUTE FUNCTION {call}")


def downgrade() -> None:
    for table, name, _, _, _ in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION node.live_notify_statement()")
    op.execute("DROP FUNCTION node.live_notify_row()")
