"""The checks of medplat.uploads on case photos from phones: WebP and HEIC/HEIF told by their bytes, the
declared type matching them, and cut-short or garbage files refused with the exact problem."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest

from medplat.api.problems import Problem
from medplat.uploads import MAX_BOXES, PHOTO_SIGNATURES, SIGNATURES, spool_checked

# A 2x2 lossless WebP as libwebp (through Pillow) writes it: RIFF, 30 bytes follow, WEBP, a VP8L chunk of 17.
WEBP = bytes.fromhex("524946461e000000574542505650384c110000002f014000000750bc2257abff8188e87f0000")
# The same picture lossy: a VP8 chunk of 44 bytes.
WEBP_LOSSY = bytes.fromhex(
    "524946463800000057454250565038202c000000b001009d012a0200020001402625a00274ba0004300000fedb51ffd8b396c0bc7ffccd1fa4df49bb98000000"
)

CUT_RIFF = "is cut short: its RIFF header or first chunk counts more bytes than it has"
NOT_WEBP = "does not start like a WebP image (RIFF, WEBP, then a VP8, VP8L or VP8X chunk)"
NOT_HEIC = "names none of the brands heic, heim, heis, heix, hevc, hevx in its ftyp box"
NOT_HEIF = "names none of the brands heic, heim, heis, heix, hevc, hevx, mif1, msf1 in its ftyp box"
CUT_BOX = "is cut short: a box runs past the end of the file"
NO_FTYP = "does not start with a complete ISO-BMFF ftyp box"


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4) + kind + payload


def heif(major: bytes = b"heic", compatible: tuple[bytes, ...] = (b"mif1", b"heic"), mdat: bytes = bytes(64)) -> bytes:
    """The top level of a HEIF file as a phone writes it: ftyp (major brand, minor version, compatible brands),
    meta (a full box with its `pict` handler), mdat (the coded image)."""
    hdlr = box(b"hdlr", bytes(4) + bytes(4) + b"pict" + bytes(12) + b"\x00")
    return box(b"ftyp", major + bytes(4) + b"".join(compatible)) + box(b"meta", bytes(4) + hdlr) + box(b"mdat", mdat)


HEIC = heif()


async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def check(media_type: str, data: bytes) -> str | None:
    return PHOTO_SIGNATURES[media_type](io.BytesIO(data), len(data))


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        ("image/webp", WEBP),
        ("image/webp", WEBP_LOSSY),
        ("image/webp", WEBP + b"trailing"),  # bytes after the RIFF chunk are ignored, as readers do
        ("image/heic", HEIC),
        ("image/heif", HEIC),  # every HEIC is a HEIF
        ("image/heif", heif(b"mif1", (b"mif1", b"miaf"))),
        ("image/heic", heif(b"mif1", (b"mif1", b"heix"))),  # a compatible brand is enough
        ("image/heic", heif(b"hevc", (b"msf1",))),
        ("image/heif", heif(b"msf1", ())),
        ("image/heic", heif(mdat=b"")[:-8] + (1).to_bytes(4) + b"mdat" + (16 + 5).to_bytes(8) + b"12345"),  # 64-bit size
        ("image/heic", heif()[:-72] + bytes(4) + b"mdat" + bytes(64)),  # size 0: the last box runs to the end
        ("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(20)),
        ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(20)),
    ],
)
def test_photos_from_phones_pass(media_type: str, data: bytes) -> None:
    assert check(media_type, data) is None


@pytest.mark.parametrize(
    ("media_type", "data", "problem"),
    [
        ("image/webp", WEBP[:-2], CUT_RIFF),
        ("image/webp", WEBP[:15], NOT_WEBP),
        (
            "image/webp",
            WEBP[:4] + (10).to_bytes(4, "little") + WEBP[8:],
            CUT_RIFF,
        ),
        (
            "image/webp",
            b"RIFF" + WEBP[4:8] + b"WAVEfmt " + WEBP[16:],
            NOT_WEBP,
        ),
        ("image/webp", HEIC, NOT_WEBP),
        ("image/heic", HEIC[:-1], CUT_BOX),
        ("image/heic", HEIC + b"\x00\x00", CUT_BOX),  # a stray tail is no box
        ("image/heic", HEIC[:20], NO_FTYP),
        ("image/heic", heif(b"mif1", (b"mif1", b"avif")), NOT_HEIC),
        (
            "image/heif",
            heif(b"avif", (b"avif", b"miaf")),
            NOT_HEIF,
        ),
        (
            "image/heif",
            heif(b"isom", (b"mp41",)),
            NOT_HEIF,
        ),
        ("image/heic", WEBP, NO_FTYP),
        ("image/heic", b"\x00\x00\x00\x0fftypheic" + bytes(40), NO_FTYP),  # not a whole brand
        ("image/heic", HEIC[:24] + box(b"free", b"") * MAX_BOXES, f"has more than {MAX_BOXES} top-level boxes"),
        ("image/heic", HEIC[:24] + (4).to_bytes(4) + b"mdat" + bytes(8), "has a box smaller than its own header"),
        ("image/png", WEBP, "does not start with the signature of its type"),
        ("image/jpeg", HEIC, "does not start with the signature of its type"),
    ],
)
def test_cut_short_garbage_or_another_type_is_named(media_type: str, data: bytes, problem: str) -> None:
    assert check(media_type, data) == problem


async def test_the_declared_type_must_be_the_one_the_bytes_show() -> None:
    with pytest.raises(Problem) as caught:
        await spool_checked(chunks_of(HEIC), "image/webp", PHOTO_SIGNATURES, 1024, "a case photo")
    problem = caught.value
    assert (problem.status, problem.slug, problem.title, problem.detail, problem.errors) == (
        415,
        "content-mismatch",
        "Content does not match its type",
        "the file's content is not image/webp",
        [
            {
                "field": "body",
                "reason": f"not image/webp: the file {NOT_WEBP}",
            }
        ],
    )
    spool, length, _ = await spool_checked(chunks_of(HEIC), "image/heic", PHOTO_SIGNATURES, 1024, "a case photo")
    with spool:
        assert (spool.read(), length) == (HEIC, len(HEIC))


def test_the_diploma_scan_still_takes_pdf_jpeg_and_png_only() -> None:
    assert sorted(SIGNATURES) == ["application/pdf", "image/jpeg", "image/png"]
    assert sorted(PHOTO_SIGNATURES) == ["image/heic", "image/heif", "image/jpeg", "image/png", "image/webp"]
