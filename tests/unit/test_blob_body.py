"""A blob as it arrives (medsync.transport.BlobBody): the checks of section 7.2 of the sync protocol, made as
the object store reads it, and always before the last of the declared bytes is handed over.

The network is stood in for by an iterator of chunks (what httpx's `iter_raw` yields); the store is stood
in for by the read pattern of the MinIO client (`read(part size)` until the declared length).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest

from medsync.transport import BlobBody, TransportError

MIB = 1024 * 1024


def arriving(data: bytes, chunk: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def body_of(data: bytes, *, declared: bytes | None = None, length: int | None = None, chunk: int = 64 * 1024) -> BlobBody:
    declared = data if declared is None else declared
    return BlobBody(arriving(data, chunk), sha256=hashlib.sha256(declared).hexdigest(), length=len(declared) if length is None else length)


def read_parts(body: BlobBody, length: int, part: int) -> list[bytes]:
    """What the store does: read whole parts of `part` bytes until the declared length."""
    parts: list[bytes] = []
    while sum(map(len, parts)) < length:
        parts.append(body.read(min(part, length - sum(map(len, parts)))))
    return parts


@pytest.mark.parametrize(
    ("size", "part", "chunk"), [(MIB, 5 * MIB, 64 * 1024), (12 * MIB + 7, 5 * MIB, 64 * 1024), (1000, 7, 3), (1, 1, 1)]
)
def test_an_honest_blob_is_handed_over_whole_and_checked(size: int, part: int, chunk: int) -> None:
    data = os.urandom(size)
    body = body_of(data, chunk=chunk)
    parts = read_parts(body, size, part)
    assert b"".join(parts) == data
    assert [len(p) for p in parts[:-1]] == [part] * (len(parts) - 1)
    assert body.checked


def test_a_blob_whose_hash_differs_is_refused_before_its_last_part_is_handed_over() -> None:
    data = os.urandom(12 * MIB)
    body = body_of(data, declared=data[:-1] + bytes([data[-1] ^ 1]))
    assert len(body.read(5 * MIB)) == 5 * MIB
    assert len(body.read(5 * MIB)) == 5 * MIB
    with pytest.raises(TransportError) as caught:
        body.read(2 * MIB)
    assert caught.value.code == "blob.hash_mismatch"
    assert not body.checked


def test_a_blob_longer_than_declared_stops_one_byte_past_the_length() -> None:
    sent: list[int] = []

    def network() -> Iterator[bytes]:
        for chunk in arriving(b"x" * 5_000_000):
            sent.append(len(chunk))
            yield chunk

    body = BlobBody(network(), sha256=hashlib.sha256(b"x" * 1000).hexdigest(), length=1000)
    with pytest.raises(TransportError) as caught:
        body.read(1000)
    assert caught.value.code == "blob.too_long"
    assert len(sent) <= 2, "the sender's extra data is not read on"


def test_a_blob_that_ends_early_is_too_short() -> None:
    data = os.urandom(3000)
    body = BlobBody(arriving(data[:2999]), sha256=hashlib.sha256(data).hexdigest(), length=3000)
    with pytest.raises(TransportError) as caught:
        body.read(3000)
    assert caught.value.code == "blob.too_short"


def test_an_empty_blob_is_checked_by_finish() -> None:
    body = body_of(b"")
    body.finish()
    assert body.checked
    assert body.read(10) == b""
    liar = BlobBody(arriving(b"surprise"), sha256=hashlib.sha256(b"").hexdigest(), length=0)
    with pytest.raises(TransportError) as caught:
        liar.finish()
    assert caught.value.code == "blob.too_long"


def test_a_network_failure_is_transient() -> None:
    def network() -> Iterator[bytes]:
        yield b"a" * 100
        raise httpx.ReadError("connection reset")

    body = BlobBody(network(), sha256="0" * 64, length=1000)
    with pytest.raises(TransportError) as caught:
        body.read(1000)
    assert caught.value.code == "blob.unavailable"


def test_finish_keeps_what_it_read_for_the_store() -> None:
    data = os.urandom(200_000)
    body = body_of(data)
    first = body.read(1000)
    body.finish()
    assert body.checked
    assert first + body.read(-1) == data
