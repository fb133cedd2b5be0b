"""Structured JSON logs for every process of the node, with the region and the request id on each line.

Personal data must never reach a log line. The code logs ids and counts, never contact details; as a second
line of defence `scrub_personal_data` masks anything that looks like an e-mail address or a phone number
in every string of every event, including those from third-party libraries' stdlib loggers.

Our own events take structlog's native path: a filtering bound logger renders the event and writes the line
itself (msgspec's JSON encoder, no stdlib `LogRecord`, no caller lookup), because the access line is written
for every request and its cost showed in the feed benchmark (docs/benchmarks.md). Third-party libraries'
stdlib records go through the same processors by `ProcessorFormatter`. Both write whole lines to one stream
under the stdlib handler's lock, so lines from threads never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import msgspec
import structlog

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ()-]{8,}\d(?![\w-])")
REDACTED = "[redacted]"


def _mask_phone(match: re.Match[str]) -> str:
    # Nine digits or more: a phone number; fewer (dates, small counts) stay as they are.
    return REDACTED if sum(c.isdigit() for c in match.group()) >= 9 else match.group()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub(_mask_phone, _EMAIL.sub(REDACTED, value))
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def scrub_personal_data(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key not in ("timestamp", "level", "region", "request_id", "logger"):
            event[key] = _scrub(value)
    return event


def _add_region(region: str) -> structlog.types.Processor:
    def add_region(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("region", region)
        return event

    return add_region


def _dumps(event: Any, **_: Any) -> str:
    # Anything msgspec cannot write natively (keys included) is written as its repr, as structlog's default does.
    return msgspec.json.encode(event, enc_hook=repr).decode()


class _Sink:
    """Where lines go and from which level: read at every call, so loggers cached before a reconfiguration follow it."""

    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(sys.stderr)
    level: int = logging.INFO


def _drop_below_level(_: Any, method_name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _LEVELS.get(method_name, logging.INFO) < _Sink.level:
        raise structlog.DropEvent
    return event


_LEVELS = {name.lower(): level for name, level in logging.getLevelNamesMapping().items()} | {"exception": logging.ERROR}
"""A bound logger's method name -> its stdlib level (debug ... critical, warn, fatal, exception)."""


class _LineLogger:
    """structlog's logger for our own events: one JSON line onto the stream, under the stdlib handler's lock."""

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        handler = _Sink.handler
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(message + "\n")
            handler.stream.flush()

    debug = info = warning = warn = error = critical = fatal = exception = log = msg


def configure_logging(region: str, level: str = "INFO", stream: Any = None) -> None:
    """Route structlog and the stdlib loggers (uvicorn, celery, sqlalchemy) to one JSON stream."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_region(region),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Plain-text tracebacks: structured ones would carry local variables, which may hold personal data.
        structlog.processors.format_exc_info,
        scrub_personal_data,
    ]
    render = structlog.processors.JSONRenderer(serializer=_dumps)
    handler = logging.StreamHandler(stream or sys.stderr)
    _Sink.handler, _Sink.level = handler, logging.getLevelNamesMapping()[level.upper()]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, render],
        )
    )
    structlog.configure(
        processors=[_drop_below_level, *shared, render],
        logger_factory=lambda *args: _LineLogger(str(args[0]) if args else ""),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        # Our own middleware writes one access line per request, without query strings.
        logging.getLogger(noisy).handlers[:] = []
        logging.getLogger(noisy).propagate = False
    for name in ("uvicorn", "uvicorn.error", "celery", "sqlalchemy", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
