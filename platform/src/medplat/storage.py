"""The node's object store: a small interface, and its adapter for any S3-compatible server (MinIO client).

Each node has two buckets: one for personal files (diploma scans, case photos) that never leave the node,
one for shared media that may be replicated. The same adapter talks to MinIO in production and to
SeaweedFS in the local federation.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal, Protocol
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from medplat.residency import DataCategory, LegalBasis, Residency, Retention

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class UnsafeKeyError(ValueError):
    pass


def safe_key(key: str) -> str:
    """Object keys are relative paths of plain segments: no `..`, no leading `/`, no `?`, `#` or NUL."""
    if len(key) > 512 or not _SAFE_KEY.match(key) or any(seg in (".", "..") for seg in key.split("/")):
        raise UnsafeKeyError("object key must be relative path segments of letters, digits, '.', '_' and '-'")
    return key


BucketKind = Literal["personal", "shared"]
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SHA256 = "[0-9a-f]{64}"


@dataclass(frozen=True, slots=True)
class KeyPrefix:
    """A declared family of object keys: which bucket it lives in, what it holds, and which column points at it.

    The data map lists these, the residency scanner checks the buckets against them, and the code that writes
    objects builds its keys with `key()`, so a key that does not fit its declaration is never written.
    """

    name: str
    bucket: BucketKind
    prefix: str
    pattern: str
    """The whole key as written now, as a regular expression both Python and PostgreSQL understand."""
    residency: Residency
    category: DataCategory
    legal_basis: LegalBasis
    retention: Retention
    referenced_by: str
    """`schema.table.column` whose values are this prefix's keys: an object nobody references is an orphan."""
    written_by: str
    separator: str = "/"
    """What joins the parts after the prefix. `_` keeps a prefix flat: one folder for all its objects, which an S3
    server built on a file tree (SeaweedFS's filer, MinIO's drives) lists many times faster than a folder per owner."""
    legacy_pattern: str | None = None
    """Keys an earlier release wrote (a folder per owner): still recognised by the scanner and by erasure, never written."""

    def key(self, *parts: str) -> str:
        key = safe_key(self.prefix + self.separator.join(parts))
        if not re.fullmatch(self.pattern, key):
            raise UnsafeKeyError(f"an object key of {self.name} must match {self.pattern}")
        return key

    @property
    def accepted(self) -> str:
        """Every key of this prefix, current or legacy, as one regular expression (Python and PostgreSQL)."""
        return self.pattern if self.legacy_pattern is None else f"(?:{self.pattern})|(?:{self.legacy_pattern})"

    def matches(self, key: str) -> bool:
        return key.startswith(self.prefix) and re.fullmatch(self.accepted, key) is not None

    def owned_by(self, first: str) -> tuple[str, ...]:
        """The listing prefixes of every key whose first part is `first` (a doctor's files), in both layouts."""
        prefixes = [f"{self.prefix}{first}{self.separator}"]
        if self.legacy_pattern is not None and self.separator != "/":
            prefixes.append(f"{self.prefix}{first}/")
        return tuple(prefixes)


PREFIXES: dict[str, KeyPrefix] = {}
"""Every key prefix the node writes, by name; `declare_prefix` is the only way in."""


def declare_prefix(prefix: KeyPrefix) -> KeyPrefix:
    if prefix.name in PREFIXES or any(p.bucket == prefix.bucket and p.prefix == prefix.prefix for p in PREFIXES.values()):
        raise ValueError(f"key prefix {prefix.name} ({prefix.bucket}:{prefix.prefix}) is declared twice")
    PREFIXES[prefix.name] = prefix
    return prefix


# Diploma scans, case photos and media are flat (`diplomas/<doctor id>_<sha256>`); received blobs keep one folder
# per origin country, which is three folders, not one per owner.
DIPLOMA_SCANS = declare_prefix(
    KeyPrefix(
        name="diploma_scans", bucket="personal", prefix="diplomas/", pattern=f"diplomas/{_UUID}_{_SHA256}",
        residency=Residency.PERSONAL, category=DataCategory.PROFESSIONAL, legal_basis=LegalBasis.CONTRACT,
        retention=Retention("while the account exists; deleted on erasure or when a new scan replaces it"),
        referenced_by="personal.diploma.key", written_by="medplat.domain.accounts.services.AccountService.upload_diploma",
        separator="_", legacy_pattern=f"diplomas/{_UUID}/{_SHA256}",
    )
)  # fmt: skip
CONTENT_MEDIA = declare_prefix(
    KeyPrefix(
        name="content_media", bucket="shared", prefix="media/", pattern=f"media/{_UUID}_{_SHA256}",
        residency=Residency.SHARED, category=DataCategory.MEDIA, legal_basis=LegalBasis.NOT_PERSONAL,
        retention=Retention("while the content item exists; deleted with its tombstone"),
        referenced_by="shared.content_media.key", written_by="medplat.domain.content.services.ContentService.attach_media",
        separator="_", legacy_pattern=f"media/{_UUID}/{_SHA256}",
    )
)  # fmt: skip
CASE_PHOTOS = declare_prefix(
    KeyPrefix(
        name="case_photos", bucket="personal", prefix="cases/", pattern=f"cases/{_UUID}_{_UUID}_(before|after)-{_SHA256}",
        residency=Residency.PERSONAL, category=DataCategory.HEALTH, legal_basis=LegalBasis.CONSENT,
        retention=Retention("while the case exists; deleted with it, or with the doctor's account on erasure"),
        referenced_by="personal.case_photo.key", written_by="medplat.domain.cases.service.CaseService.put_photo",
        separator="_", legacy_pattern=f"cases/{_UUID}/{_UUID}/(before|after)-{_SHA256}",
    )
)  # fmt: skip
RECEIVED_MEDIA = declare_prefix(
    KeyPrefix(
        name="received_media", bucket="shared", prefix="received/", pattern=f"received/[a-z]{{2}}/{_SHA256}",
        residency=Residency.SHARED, category=DataCategory.MEDIA, legal_basis=LegalBasis.NOT_PERSONAL,
        retention=Retention("while the received item is applied; deleted when its tombstone arrives"),
        referenced_by="shared.content_media.key", written_by="medsync.inbound._blob_key",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str | None = None


class ObjectStore(Protocol):
    """What the node needs from an object store."""

    @property
    def endpoint(self) -> str: ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def ensure_bucket(self, bucket: str) -> None: ...

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes | IO[bytes],
        length: int,
        content_type: str,
    ) -> ObjectInfo: ...

    def get(self, bucket: str, key: str) -> bytes: ...

    def stream(self, bucket: str, key: str, chunk_size: int = 65536) -> Iterator[bytes]: ...

    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]: ...


class MinioObjectStore:
    """ObjectStore over the `minio` client; works with any S3-compatible server."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("object-store endpoint must be an http(s) URL")
        self._endpoint = f"{parts.scheme}://{parts.netloc}"
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def client(self) -> Minio:
        return self._client

    def bucket_exists(self, bucket: str) -> bool:
        return self._client.bucket_exists(bucket)

    def ensure_bucket(self, bucket: str) -> None:
        if not self._client.bucket_exists(bucket):
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes | IO[bytes],
        length: int,
        content_type: str,
    ) -> ObjectInfo:
        stream = io.BytesIO(data) if isinstance(data, bytes) else data
        # minio only calls read() on the stream; any binary file object will do.
        result = self._client.put_object(bucket, safe_key(key), stream, length, content_type=content_type)  # type: ignore[arg-type]
        return ObjectInfo(key=key, size=length, etag=result.etag or "", content_type=content_type)

    def get(self, bucket: str, key: str) -> bytes:
        response = self._client.get_object(bucket, safe_key(key))
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def stream(self, bucket: str, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """The object's bytes in chunks, without holding it all in memory."""
        response = self._client.get_object(bucket, safe_key(key))
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            st = self._client.stat_object(bucket, safe_key(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        return ObjectInfo(key=key, size=st.size or 0, etag=st.etag or "", content_type=st.content_type)

    def delete(self, bucket: str, key: str) -> None:
        self._client.remove_object(bucket, safe_key(key))

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
            yield ObjectInfo(key=obj.object_name or "", size=obj.size or 0, etag=obj.etag or "")
