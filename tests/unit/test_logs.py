"""Logs are JSON lines with the region; anything that looks like contact data is masked."""

from __future__ import annotations

import io
import json
import logging

import structlog

from medplat.logs import REDACTED, configure_logging, get_logger


def test_log_lines_are_json_with_region_and_context() -> None:
    stream = io.StringIO()
    configure_logging("uz", stream=stream)
    structlog.contextvars.bind_contextvars(request_id="req-12345678")
    try:
        get_logger("t").info("something.happened", count=3)
        logging.getLogger("thirdparty").warning("from the stdlib")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "something.happened"
    assert (first["region"], first["request_id"], first["count"], first["level"]) == ("uz", "req-12345678", 3, "info")
    assert second["event"] == "from the stdlib"
    assert second["region"] == "uz"


def test_contact_data_is_masked_in_every_field() -> None:
    stream = io.StringIO()
    configure_logging("kz", stream=stream)
    get_logger("t").info("contact doctor@example.kz now", detail={"phone": "+7 701 123-45-67"}, items=["a@b.co"])
    logging.getLogger("lib").info("call +998901234567 please")
    text = stream.getvalue()
    assert "doctor@example.kz" not in text
    assert "701 123-45-67" not in text
    assert "a@b.co" not in text
    assert "998901234567" not in text
    assert text.count(REDACTED) == 4


def test_dates_and_small_numbers_are_not_mistaken_for_phones() -> None:
    stream = io.StringIO()
    configure_logging("kz", stream=stream)
    get_logger("t").info("window 2026-11-21 to 2026-12-01", took="12 345")
    assert REDACTED not in stream.getvalue()
