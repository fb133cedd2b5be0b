"""The MinIO-client adapter against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
from minio.error import S3Error

from medplat.config import Settings
from medplat.node import object_store
from medplat.storage import PAGE_KEYS, MinioObjectStore, UnsafeKeyError, all_keys
from tests.conftest import Engines


def test_put_get_stat_list_delete_round_trip(settings: Settings) -> None:
    store = object_store(settings)
    prefix = f"t/{uuid.uuid4().hex}"
    info = store.put(settings.shared_bucket, f"{prefix}/a.txt", b"hello", 5, "text/plain")
    store.put(settings.shared_bucket, f"{prefix}/b.bin", io.BytesIO(b"\x00\x01"), 2, "application/octet-stream")
    assert info.size == 5 and info.etag
    assert store.get(settings.shared_bucket, f"{prefix}/a.txt") == b"hello"
    stat = store.stat(settings.shared_bucket, f"{prefix}/a.txt")
    assert stat is not None and (stat.size, stat.content_type) == (5, "text/plain")
    assert sorted(o.key for o in store.list(settings.shared_bucket, prefix)) == [f"{prefix}/a.txt", f"{prefix}/b.bin"]
    store.delete(settings.shared_bucket, f"{prefix}/a.txt")
    assert store.stat(settings.shared_bucket, f"{prefix}/a.txt") is None
    assert [o.key for o in store.list(settings.shared_bucket, prefix)] == [f"{prefix}/b.bin"]
    store.delete(settings.shared_bucket, f"{prefix}/b.bin")  # the buckets are the session's: leave them as found


def test_open_is_one_get_with_the_size_and_releases_its_connection(settings: Settings) -> None:
    store = object_store(settings)
    assert isinstance(store, MinioObjectStore)
    key = f"t/{uuid.uuid4().hex}"
    data = bytes(range(256)) * 1000
    store.put(settings.shared_bucket, key, data, len(data), "application/octet-stream")
    opened = store.open(settings.shared_bucket, key, 100_000)
    assert opened is not None and opened.size == len(data)
    assert b"".join(opened.chunks) == data
    assert store.open(settings.shared_bucket, f"t/{uuid.uuid4().hex}") is None
    # Abandoned after one chunk: closing hands the connection back; the pool keeps serving afterwards.
    for _ in range(20):
        partial = store.open(settings.shared_bucket, key, 1000)
        assert partial is not None and next(partial.chunks) == data[:1000]
        partial.close()
    assert store.get(settings.shared_bucket, key) == data
    store.delete(settings.shared_bucket, key)


def test_personal_and_shared_buckets_are_separate(settings: Settings) -> None:
    store = object_store(settings)
    key = f"diplomas/{uuid.uuid4().hex}.pdf"
    store.put(settings.personal_bucket, key, b"%PDF-1.7", 8, "application/pdf")
    assert store.stat(settings.personal_bucket, key) is not None
    assert store.stat(settings.shared_bucket, key) is None
    store.delete(settings.personal_bucket, key)


def test_unsafe_keys_never_reach_the_store(settings: Settings) -> None:
    store = object_store(settings)
    before = {o.key for o in store.list(settings.shared_bucket)}
    for key in ("../escape", "/abs", "a?b", "a#b", "a\x00b"):
        with pytest.raises(UnsafeKeyError):
            store.put(settings.shared_bucket, key, b"x", 1, "text/plain")
    assert {o.key for o in store.list(settings.shared_bucket)} == before


def test_wrong_credentials_are_refused(engines: Engines, settings: Settings) -> None:
    intruder = MinioObjectStore(engines.seaweed.endpoint, engines.seaweed.access_key, "wrong-secret")
    with pytest.raises(S3Error) as caught:
        intruder.get(settings.shared_bucket, "anything")
    assert caught.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")


def test_endpoint_must_be_http(settings: Settings) -> None:
    with pytest.raises(ValueError, match="object-store endpoint must be an http"):
        MinioObjectStore("ftp://x", "a", "b")
    assert MinioObjectStore("https://s3.kz.example:9000", "a", "b").endpoint == "https://s3.kz.example:9000"


@pytest.fixture
def two_buckets(settings: Settings) -> Iterator[tuple[MinioObjectStore, str, str]]:
    """Two empty buckets of this test's own, removed with everything in them afterwards."""
    store = object_store(settings)
    assert isinstance(store, MinioObjectStore)
    names = (f"list-a-{uuid.uuid4().hex[:12]}", f"list-b-{uuid.uuid4().hex[:12]}")
    for name in names:
        store.ensure_bucket(name)
    yield store, *names
    for name in names:
        for info in list(store.list(name)):
            store.client.remove_object(name, info.key)
        store.client.remove_bucket(name)


def test_listing_by_folder_finds_a_planted_object_in_every_shard(two_buckets: tuple[MinioObjectStore, str, str]) -> None:
    store, first, second = two_buckets
    # One object in every place a split by folder could lose one: the top level (no `/`), each folder, a folder
    # inside a folder, a key that is itself a folder marker, keys S3 must escape, and a folder longer than a page.
    odd = ["top-level.pdf", "diplomas/x", "cases/a/b/c/deep", "exports/", "exports/dump.csv", "a b+c%20&<x>.txt", "ключ/файл"]
    crowded = [f"media/{n:05d}" for n in range(PAGE_KEYS + 1)]
    for key in odd:  # written with the minio client itself: the adapter's put refuses keys the node would never write
        store.client.put_object(first, key, io.BytesIO(b"x"), 1)
    for key in crowded:
        store.put(second, key, b"y", 1, "application/octet-stream")
    store.put(second, "received/ru/" + "ab" * 32, b"z", 1, "image/png")

    listed = [(label, key) for label, page in all_keys(store, {"one": first, "two": second}, workers=3) for key in page]
    assert len(listed) == len(set(listed)), "no key listed twice"
    assert sorted(k for label, k in listed if label == "one") == sorted(o.key for o in store.list(first)) == sorted(odd)
    assert sorted(k for label, k in listed if label == "two") == sorted([*crowded, "received/ru/" + "ab" * 32])
    assert len(store.key_page(second, "media/").keys) == PAGE_KEYS  # so the crowded folder really took two pages


def test_a_listing_with_wrong_credentials_is_refused(engines: Engines, settings: Settings) -> None:
    intruder = MinioObjectStore(engines.seaweed.endpoint, engines.seaweed.access_key, "wrong-secret")
    with pytest.raises(S3Error) as caught:
        list(all_keys(intruder, {"shared": settings.shared_bucket}))
    assert caught.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
