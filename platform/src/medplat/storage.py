"""The node's object store: a small interface, and its adapter for any S3-compatible server (MinIO client).

Each node has two buckets: one for personal files (diploma scans, case photos) that never leave the node,
one for shared media that may be replicated. The same adapter talks to MinIO in production and to
SeaweedFS in the local federation.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import re
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import IO, Literal, Protocol
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit
from xml.etree import ElementTree

import certifi
import urllib3
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.error import S3Error
from minio.helpers import DictType
from minio.signer import sign_v4_s3
from urllib3 import BaseHTTPResponse

from medplat.residency import DataCategory, LegalBasis, Residency, Retention

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class UnsafeKeyError(ValueError):
    pass


class ListingError(RuntimeError):
    """The store answered a listing in a way that cannot be followed to its end."""


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


@dataclass(frozen=True, slots=True)
class OpenedObject:
    """An object being read: its size from the GET's own answer, and its bytes (close() releases the connection)."""

    size: int
    chunks: Generator[bytes, None, None]

    def close(self) -> None:
        self.chunks.close()


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of a key listing: the keys only, which is all the residency scanner needs."""

    keys: list[str]
    folders: list[str]
    """With a delimiter: the common prefixes (each ends in the delimiter) standing for every key under them."""
    next_token: str | None
    """Pass it back for the next page; None on the last one."""


class ObjectStore(Protocol):
    """What the node needs from an object store."""

    @property
    def endpoint(self) -> str: ...

    def bucket_exists(self, bucket: str) -> bool: ...

    def bucket_location(self, bucket: str) -> str:
        """The region the store itself says the bucket is in (S3 GetBucketLocation; empty means us-east-1)."""
        ...

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

    def open(self, bucket: str, key: str, chunk_size: int = 65536) -> OpenedObject | None:
        """One GET: the object's size and bytes, or None if there is no such object (no HEAD first)."""
        ...

    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def delete(self, bucket: str, key: str) -> None: ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def key_page(self, bucket: str, prefix: str = "", delimiter: str = "", token: str | None = None) -> KeyPage: ...


_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PAGE_KEYS = 1000
"""Keys per listing request: the most S3 servers return."""


class MinioObjectStore:
    """ObjectStore over the `minio` client; works with any S3-compatible server."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("object-store endpoint must be an http(s) URL")
        self._endpoint = f"{parts.scheme}://{parts.netloc}"
        self._region = region
        self._credentials = Credentials(access_key, secret_key)
        # One connection pool for the minio client and the key listing, set up as minio sets up its own.
        timeout = 300
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
            http_client=self._http,
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def client(self) -> Minio:
        return self._client

    def bucket_exists(self, bucket: str) -> bool:
        return self._client.bucket_exists(bucket)

    def bucket_location(self, bucket: str) -> str:
        # minio's own lookup (Minio._get_region) is private and caches; this asks the store every time. The answer is a
        # LocationConstraint element, the document's root on AWS and MinIO, inside another on SeaweedFS.
        answer = self._signed_get(bucket, {"location": ""})
        found = next((e.text for e in answer.iter() if e.tag.rsplit("}", 1)[-1] == "LocationConstraint"), None)
        return (found or "").strip() or "us-east-1"

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
        """The object's bytes in chunks, without holding it all in memory; nothing is asked of the store until
        the first chunk is wanted (callers hand this to a streaming response from async code)."""
        yield from self._chunks(self._client.get_object(bucket, safe_key(key)), chunk_size)

    def open(self, bucket: str, key: str, chunk_size: int = 65536) -> OpenedObject | None:
        try:
            response = self._client.get_object(bucket, safe_key(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        try:
            size = int(response.headers["Content-Length"])
        except (KeyError, ValueError):
            response.close()
            response.release_conn()
            raise
        return OpenedObject(size, self._chunks(response, chunk_size))

    @staticmethod
    def _chunks(response: BaseHTTPResponse, chunk_size: int) -> Generator[bytes, None, None]:
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            st = self._client.stat_object(bucket, safe_key(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        return ObjectInfo(key=key, size=st.size or 0, etag=st.etag or "", content_type=st.content_type)

    def delete(self, bucket: str, key: str) -> None:
        self._client.remove_object(bucket, safe_key(key))

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
            yield ObjectInfo(key=obj.object_name or "", size=obj.size or 0, etag=obj.etag or "")

    def key_page(self, bucket: str, prefix: str = "", delimiter: str = "", token: str | None = None) -> KeyPage:
        """One ListObjectsV2 page, reading only the keys and the common prefixes.

        Not minio's list_objects: it builds a full object per key (ten XPath look-ups and two date parses), about
        60 µs a key, which is more than the server spends listing it, and the residency scanner lists whole buckets.
        The request is signed with minio's own signer and sent through the same connection pool.
        """
        query = {"list-type": "2", "encoding-type": "url", "max-keys": str(PAGE_KEYS), "prefix": prefix, "delimiter": delimiter}
        if token:
            query["continuation-token"] = token
        page = self._signed_get(bucket, query)
        decode = unquote_plus if page.findtext(f"{_S3_XML}EncodingType") == "url" else str
        keys = [decode(element.text or "") for element in page.iter(f"{_S3_XML}Key")]
        folders = [decode(element.text or "") for element in page.iterfind(f"{_S3_XML}CommonPrefixes/{_S3_XML}Prefix")]
        truncated = page.findtext(f"{_S3_XML}IsTruncated") == "true"
        next_token = page.findtext(f"{_S3_XML}NextContinuationToken") or None
        if truncated and (next_token is None or next_token == token):
            raise ListingError(f"the store cut the listing of {bucket} short without a new continuation token")
        return KeyPage(keys, folders, next_token if truncated else None)

    def _signed_get(self, bucket: str, query: dict[str, str]) -> ElementTree.Element:
        encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
        url = urlsplit(f"{self._endpoint}/{quote(bucket, safe='')}?{encoded}")
        now = datetime.datetime.now(datetime.UTC)
        headers: DictType = {"Host": url.netloc, "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"), "x-amz-content-sha256": _EMPTY_SHA256}
        signed = sign_v4_s3(
            method="GET", url=url, region=self._region, headers=headers, credentials=self._credentials,
            content_sha256=_EMPTY_SHA256, date=now,
        )  # fmt: skip
        response = self._http.request("GET", urlunsplit(url), headers={k: str(v) for k, v in signed.items()})
        if response.status != 200:
            try:
                error = S3Error.fromxml(response)
            except ElementTree.ParseError:
                error = S3Error(response, f"HTTP{response.status}", "the store refused the listing", f"/{bucket}", None, None, bucket)
            raise error
        # The body comes from the node's own object store, and expat refuses entity-expansion bombs.
        return ElementTree.fromstring(response.data)  # noqa: S314


def all_keys(store: ObjectStore, buckets: Mapping[str, str], workers: int = 8) -> Iterator[tuple[str, list[str]]]:
    """Every key of every bucket, as (label, a page of keys), listed folder by folder in parallel.

    A delimited listing of a bucket's top level gives the keys without a `/` and one folder per first segment; every
    folder is then listed in full. That splits the key space exactly (a key is at the top or in one folder), so no key
    is missed or listed twice, and pages of different folders (and buckets) are fetched at once on `workers` threads.
    Each listing has one page in flight at a time and at most twice `workers` pages are fetched or held at once, so
    memory does not grow with the bucket. Keys come in the store's order within a folder, folders interleaved.
    """
    # (label, bucket, prefix, delimiter, continuation token) of the pages still to fetch.
    queued: deque[tuple[str, str, str, str, str | None]] = deque((label, bucket, "", "/", None) for label, bucket in buckets.items())
    pending: dict[Future[KeyPage], tuple[str, str, str, str]] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="list") as pool:
        try:
            while queued or pending:
                while queued and len(pending) < 2 * workers:
                    label, bucket, prefix, delimiter, token = queued.popleft()
                    pending[pool.submit(store.key_page, bucket, prefix, delimiter, token)] = (label, bucket, prefix, delimiter)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    label, bucket, prefix, delimiter = pending.pop(future)
                    page = future.result()
                    if page.next_token is not None:  # a started listing goes on before a new folder starts
                        queued.appendleft((label, bucket, prefix, delimiter, page.next_token))
                    queued.extend((label, bucket, folder, "", None) for folder in page.folders)
                    if page.keys:
                        yield label, page.keys
        finally:
            # On an error (or a consumer that stops early) do not wait for pages nobody will read.
            pool.shutdown(wait=True, cancel_futures=True)
