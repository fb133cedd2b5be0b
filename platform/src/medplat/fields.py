"""Column helpers for the most sensitive personal fields: encrypted at rest, with a keyed hash for lookup.

The node's data key (MEDFED_DATA_KEY) never leaves the node. A subkey is derived from it with HKDF for each
purpose (here field encryption and the lookup hash; medplat.compliance.hooks derives one for staff pseudonyms), so
that no two purposes share a key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from advanced_alchemy.types import EncryptedString
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medplat.config import get_settings


@functools.cache
def subkey(data_key: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from the node's data key (HKDF-SHA256, info `medfed:<purpose>`)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medfed:" + purpose).derive(data_key)


def field_encryption_key() -> bytes:
    return subkey(get_settings().data_key, b"field-encryption")


def lookup_hash(value: str, data_key: bytes | None = None) -> str:
    """Keyed hash of a normalised value, for equality lookups on an encrypted column."""
    key = subkey(data_key if data_key is not None else get_settings().data_key, b"lookup-hash")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def encrypted(length: int) -> EncryptedString:
    """An encrypted string column type keyed by this node's data key (Fernet: AES-CBC + HMAC-SHA256)."""
    return EncryptedString(key=field_encryption_key, length=length)
