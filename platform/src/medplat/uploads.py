"""Checked uploads into the node's buckets: the declared type, the file's first bytes and the size, all
checked while the body is spooled, before anything is put into the bucket."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Mapping

from medplat.api.problems import Problem

SIGNATURES: Mapping[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


def refuse_type(media_type: str, allowed: Mapping[str, tuple[bytes, ...]], what: str) -> Problem:
    kinds = ", ".join(sorted(allowed))
    return Problem(
        f"{what} must be one of {kinds}, not {media_type or 'an untyped body'}",
        status=415, slug="unsupported-media-type", title="Unsupported media type",
        errors=[{"field": "content-type", "reason": f"must be one of {kinds}"}],
    )  # fmt: skip


async def spool_checked(
    chunks: AsyncIterator[bytes], media_type: str, allowed: Mapping[str, tuple[bytes, ...]], max_bytes: int, what: str
) -> tuple[tempfile.SpooledTemporaryFile[bytes], int, str]:
    """Read the body into a spooled file, refusing a wrong type, a mismatching first bytes, an empty or a too
    large body (as soon as the limit is passed). Returns the file (rewound), its length and its sha256.
    The caller closes the file."""
    if media_type not in allowed:
        raise refuse_type(media_type, allowed, what)
    digest = hashlib.sha256()
    length = 0
    head = b""
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=max_bytes)  # noqa: SIM115 (the caller closes it)
    try:
        async for chunk in chunks:
            length += len(chunk)
            if length > max_bytes:
                raise Problem(
                    f"{what} is limited to {max_bytes} bytes", status=413, slug="too-large", title="Too large",
                    errors=[{"field": "body", "reason": f"larger than {max_bytes} bytes"}],
                )  # fmt: skip
            if len(head) < 16:
                head = (head + chunk)[:16]
            digest.update(chunk)
            spool.write(chunk)
        if length == 0:
            raise Problem(
                "body: the upload is empty", status=400, slug="invalid-field", title="Invalid field",
                errors=[{"field": "body", "reason": "the upload is empty"}],
            )  # fmt: skip
        if not head.startswith(allowed[media_type]):
            raise Problem(
                f"the file's content is not {media_type}", status=415, slug="content-mismatch", title="Content does not match its type",
                errors=[{"field": "body", "reason": f"the file does not start like {media_type}"}],
            )  # fmt: skip
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, length, digest.hexdigest()
