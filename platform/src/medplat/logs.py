"""Structured JSON logs for every process of the node, with the region and the request id on each line.

Personal data must never reach a log line. The code logs ids and counts, never contact details; as a second
line of defence `scrub_personal_data` masks anything that looks like an e-mail address or a phone number
in every string of every event, including those from third-party libraries' stdlib loggers.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

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
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
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
    return structlog.stdlib.get_logger(name)
