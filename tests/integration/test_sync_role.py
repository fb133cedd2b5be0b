"""The sync workers' database role cannot touch personal data, even through a bug in the sync code."""

from __future__ import annotations

import psycopg
import pytest

from medplat.config import Settings


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM personal.doctor",
        "SELECT * FROM personal.content_author",
        "INSERT INTO personal.doctor (id) VALUES (gen_random_uuid())",
        "DELETE FROM personal.doctor",
        "CREATE TABLE personal.smuggled (x int)",
    ],
)
def test_the_sync_role_is_refused_on_the_personal_schema(settings: Settings, clean_db: None, statement: str) -> None:
    with psycopg.connect(settings.sync_database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(statement)
        assert caught.value.sqlstate == "42501"
        assert "permission denied for schema personal" in str(caught.value)


def test_the_sync_role_reads_and_writes_shared_and_federation(settings: Settings, clean_db: None) -> None:
    with psycopg.connect(settings.sync_database_url) as conn:
        conn.execute("SELECT count(*) FROM shared.content_item").fetchone()
        columns = "origin, received_sequence, received_hash, applied_sequence, updated_at"
        conn.execute(f"INSERT INTO federation.channel_in ({columns}) VALUES ('ru', 0, '', 0, now())")
        assert conn.execute("SELECT count(*) FROM federation.channel_in").fetchone() == (1,)
        conn.rollback()


def test_the_sync_role_cannot_grant_itself_more(settings: Settings) -> None:
    with psycopg.connect(settings.sync_database_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("GRANT USAGE ON SCHEMA personal TO medfed_sync")


def test_the_sync_role_cannot_read_the_one_time_codes_waiting_to_be_sent(settings: Settings) -> None:
    with psycopg.connect(settings.sync_database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute("SELECT * FROM node.otp_outbox")
        assert "permission denied for table otp_outbox" in str(caught.value)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM node.worker_heartbeat").fetchone() is not None  # the rest of node stays readable
