"""Checked uploads into the node's buckets: the declared type, the file's bytes and the size, all checked
while the body is spooled, before anything is put into the bucket."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from typing import IO

from medplat.api.problems import Problem

Check = Callable[[IO[bytes], int], str | None]
"""Looks at a whole spooled upload (rewound) of the given length: None when it is of the type it is filed
under, else why not, as a phrase completing "the file ..." that quotes none of its content."""


def starts_with(*signatures: bytes) -> Check:
    """Types told apart by their first bytes alone."""

    def check(spool: IO[bytes], length: int) -> str | None:
        head = spool.read(max(map(len, signatures)))
        return None if head.startswith(signatures) else "does not start with the signature of its type"

    return check


WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")


def webp(spool: IO[bytes], length: int) -> str | None:
    """RIFF, the size of what follows (little-endian), WEBP, then a VP8/VP8L/VP8X chunk and its size. A file
    shorter than its RIFF header or its first chunk says was cut short (phones upload over flaky links)."""
    head = spool.read(20)
    if len(head) < 20 or head[:4] != b"RIFF" or head[8:12] != b"WEBP" or head[12:16] not in WEBP_CHUNKS:
        return "does not start like a WebP image (RIFF, WEBP, then a VP8, VP8L or VP8X chunk)"
    riff_end = 8 + int.from_bytes(head[4:8], "little")
    if riff_end > length or 20 + int.from_bytes(head[16:20], "little") > riff_end:
        return "is cut short: its RIFF header or first chunk counts more bytes than it has"
    return None


HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
"""ISO/IEC 23008-12 brands of HEVC-coded images and sequences: image/heic."""
HEIF_BRANDS = HEIC_BRANDS | {b"mif1", b"msf1"}
"""Any HEIF image or sequence (mif1, msf1 say only "HEIF"; every HEIC file is HEIF too): image/heif."""
MAX_FTYP_BYTES = 256
MAX_BOXES = 64
"""A phone's HEIC has a handful of top-level boxes (ftyp, meta, mdat, maybe free); more is not a photo."""


def iso_bmff(brands: frozenset[bytes]) -> Check:
    """An ISO-BMFF file (HEIF) whose ftyp box, first, names one of `brands` as its major or a compatible brand,
    and whose top-level boxes exactly fill the file (a cut-short file has a box running past its end)."""
    names = ", ".join(sorted(b.decode() for b in brands))

    def check(spool: IO[bytes], length: int) -> str | None:
        ftyp = spool.read(MAX_FTYP_BYTES)
        size = int.from_bytes(ftyp[:4])
        if ftyp[4:8] != b"ftyp" or not 16 <= size <= min(len(ftyp), length) or size % 4:
            return "does not start with a complete ISO-BMFF ftyp box"
        named = {ftyp[8:12]} | {ftyp[i : i + 4] for i in range(16, size, 4)}
        if not named & brands:
            return f"names none of the brands {names} in its ftyp box"
        return box_chain(spool, length)

    return check


def box_chain(spool: IO[bytes], length: int) -> str | None:
    """Walk the top-level boxes (32-bit size and type; size 1: a 64-bit size follows; size 0: to the end)."""
    offset = 0
    for _ in range(MAX_BOXES):
        if offset == length:
            return None
        spool.seek(offset)
        header = spool.read(16)
        size, minimum = int.from_bytes(header[:4]), 8
        if size == 1:
            size, minimum = int.from_bytes(header[8:16]), 16
        elif size == 0:
            size = length - offset
        if len(header) >= minimum and size < minimum:
            return "has a box smaller than its own header"
        if len(header) < minimum or offset + size > length:
            return "is cut short: a box runs past the end of the file"
        offset += size
    return f"has more than {MAX_BOXES} top-level boxes"


SIGNATURES: Mapping[str, Check] = {
    "application/pdf": starts_with(b"%PDF-"),
    "image/png": starts_with(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": starts_with(b"\xff\xd8\xff"),
}
"""The diploma scan's types."""
PHOTO_SIGNATURES: Mapping[str, Check] = {
    "image/jpeg": SIGNATURES["image/jpeg"],
    "image/png": SIGNATURES["image/png"],
    "image/webp": webp,
    "image/heic": iso_bmff(HEIC_BRANDS),
    "image/heif": iso_bmff(HEIF_BRANDS),
}
"""A case photo's types: what phones produce. The declared type must be the one the bytes show."""


def refuse_type(media_type: str, allowed: Mapping[str, Check], what: str) -> Problem:
    kinds = ", ".join(sorted(allowed))
    return Problem(
        f"{what} must be one of {kinds}, not {media_type or 'an untyped body'}",
        status=415, slug="unsupported-media-type", title="Unsupported media type",
        errors=[{"field": "content-type", "reason": f"must be one of {kinds}"}],
    )  # fmt: skip


async def spool_checked(
    chunks: AsyncIterator[bytes], media_type: str, allowed: Mapping[str, Check], max_bytes: int, what: str
) -> tuple[tempfile.SpooledTemporaryFile[bytes], int, str]:
    """Read the body into a spooled file, refusing a wrong type, bytes that are not of the declared type, an
    empty or a too large body (as soon as the limit is passed). Returns the file (rewound), its length and
    its sha256. The caller closes the file."""
    if media_type not in allowed:
        raise refuse_type(media_type, allowed, what)
    digest = hashlib.sha256()
    length = 0
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=max_bytes)  # noqa: SIM115 (the caller closes it)
    try:
        async for chunk in chunks:
            length += len(chunk)
            if length > max_bytes:
                raise Problem(
                    f"{what} is limited to {max_bytes} bytes", status=413, slug="too-large", title="Too large",
                    errors=[{"field": "body", "reason": f"larger than {max_bytes} bytes"}],
                )  # fmt: skip
            digest.update(chunk)
            spool.write(chunk)
        if length == 0:
            raise Problem(
                "body: the upload is empty", status=400, slug="invalid-field", title="Invalid field",
                errors=[{"field": "body", "reason": "the upload is empty"}],
            )  # fmt: skip
        spool.seek(0)
        if (problem := allowed[media_type](spool, length)) is not None:
            raise Problem(
                f"the file's content is not {media_type}", status=415, slug="content-mismatch", title="Content does not match its type",
                errors=[{"field": "body", "reason": f"not {media_type}: the file {problem}"}],
            )  # fmt: skip
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, length, digest.hexdigest()
