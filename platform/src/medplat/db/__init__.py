"""Persistence: the declarative base, engines and sessions, and the Alembic migrations."""
