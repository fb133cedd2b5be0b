"""The MinIO-client adapter against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import io
import uuid

import pytest
from minio.error import S3Error

from medplat.config import Settings
from medplat.node import object_store
from medplat.storage import MinioObjectStore, UnsafeKeyError
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
