"""RFC 9457 problem details for every error the API returns; never a stack trace.

A domain raises `Problem` (or a subclass) with a short type slug, a title and, where it helps, the field
at fault; Litestar's own validation errors and HTTP exceptions are converted to the same shape, and any
other exception becomes a plain 500 whose detail is only the request id (the traceback goes to the log).
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://medfed.dev/problems/"

_log = structlog.stdlib.get_logger("medplat.api")


class Problem(Exception):
    """An error the API reports to the client as problem details."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.slug = slug or self.slug
        self.title = title or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_UNKNOWN_FIELD = re.compile(r"(unknown|missing required) field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _field_and_reason(key: str | None, message: str) -> tuple[str, str]:
    """msgspec reports unknown fields against the whole body; name the field itself instead."""
    field = (key or "").removeprefix("$.")
    if match := _UNKNOWN_FIELD.search(message):
        # The path is in the message for a top-level body, in the key for a nested object.
        parent = match.group(3) or ("" if field in ("", "$", "data", "body") else field)
        reason = "unknown field" if match.group(1) == "unknown" else "required field missing"
        return (f"{parent}.{match.group(2)}" if parent else match.group(2)), reason
    if field in ("", "data", "body"):
        at = _AT_PATH.search(message)
        field = at.group(1) if at else "body"
    return field or "body", _AT_PATH.sub("", message)


def _on_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(
        request, status=exc.status, slug=exc.slug, title=exc.title, detail=exc.detail,
        errors=exc.errors, headers=exc.headers, extra=exc.extra,
    )  # fmt: skip


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field, reason = _field_and_reason(item.get("key"), str(item.get("message", "invalid")))
            errors.append({"field": field, "source": str(item.get("source", "body")), "reason": reason})
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or str(exc.detail)
    return problem_response(
        request,
        status=400,
        slug="validation",
        title="Invalid request",
        detail=detail,
        errors=errors or None,
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    slug = {
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        413: "too-large",
        415: "unsupported-media-type",
        429: "too-many-requests",
    }.get(exc.status_code, "http-error")
    title = str(exc.detail) if exc.detail else "HTTP error"
    return problem_response(
        request,
        status=exc.status_code,
        slug=slug,
        title=title,
        detail=title,
        headers=exc.headers,
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.error("request.failed", path=request.url.path, method=request.method, exc_info=exc)
    return problem_response(
        request, status=HTTP_500_INTERNAL_SERVER_ERROR, slug="internal", title="Internal error",
        detail="The node could not complete the request; the request id identifies it in the node's log.",
    )  # fmt: skip


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Problem: _on_problem,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
