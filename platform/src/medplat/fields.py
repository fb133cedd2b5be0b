"""Column helpers for the most sensitive personal fields: encrypted at rest, with a keyed hash for lookup.

The node's data key (MEDFED_DATA_KEY) never leaves the node. Two subkeys are derived from it with HKDF so
that the encryption key and the lookup-hash key are independent.
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
def _subkey(data_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medfed:" + purpose).derive(data_key)


def field_encryption_key() -> bytes:
    return _subkey(get_settings().data_key, b"field-encryption")


def lookup_hash(value: str, data_key: bytes | None = None) -> str:
    """Keyed hash of a normalised value, for equality lookups on an encrypted column."""
    key = _subkey(data_key if data_key is not None else get_settings().data_key, b"lookup-hash")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def encrypted(length: int) -> EncryptedString:
    """An encrypted string column type keyed by this node's data key (Fernet: AES-CBC + HMAC-SHA256)."""
    return EncryptedString(key=field_encryption_key, length=length)
