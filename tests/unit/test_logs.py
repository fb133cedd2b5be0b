"""Logs are JSON lines with the region; anything that looks like contact data is masked."""

from __future__ import annotations

import io
import json
import logging
import threading

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


def test_levels_below_the_configured_one_are_dropped_and_errors_carry_the_traceback() -> None:
    stream = io.StringIO()
    configure_logging("ru", level="WARNING", stream=stream)
    log = get_logger("medplat.t")
    log.info("not.written")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        log.error("request.failed", exc_info=exc)
    (line,) = (json.loads(text) for text in stream.getvalue().splitlines())
    assert (line["event"], line["level"], line["logger"], line["region"]) == ("request.failed", "error", "medplat.t", "ru")
    assert "RuntimeError: boom" in line["exception"]


def test_values_json_cannot_write_natively_still_give_one_json_line() -> None:
    stream = io.StringIO()
    configure_logging("uz", stream=stream)
    get_logger("t").info("odd.values", ids={(1, 2): "pair"}, when=object)
    (line,) = (json.loads(text) for text in stream.getvalue().splitlines())
    assert line["event"] == "odd.values"
    assert line["ids"] == {"(1, 2)": "pair"}
    assert line["when"] == "<class 'object'>"


def test_lines_from_many_threads_never_interleave() -> None:
    stream = io.StringIO()
    configure_logging("kz", stream=stream)

    def write(n: int) -> None:
        for i in range(200):
            get_logger("t").info("tick", n=n, i=i, pad="x" * 500)
            logging.getLogger("lib").warning("tock %d", i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert len(lines) == 4 * 200 * 2
    assert sorted((line["n"], line["i"]) for line in lines if line["event"] == "tick") == [(n, i) for n in range(4) for i in range(200)]
