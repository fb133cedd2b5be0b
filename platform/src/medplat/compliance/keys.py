"""Whose keys a report is checked against: the federation trust file (every key it lists for a region), or keys given
explicitly. Offline: nothing is asked of any node."""

from __future__ import annotations

import base64
import binascii
import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from medplat.compliance.report import KeysOf, ReportError


def from_trust_dir(directory: Path) -> tuple[KeysOf, str]:
    from medsync.trust import load_chain

    document = load_chain(directory, now=datetime.datetime.now(datetime.UTC))

    def keys_of(region: str) -> list[Ed25519PublicKey]:
        node = document.nodes.get(region)
        return [key.public() for key in node.keys] if node else []

    return keys_of, f"keys from federation trust file version {document.version} in {directory}"


def from_key_file(path: Path) -> Ed25519PublicKey:
    """A PEM public key, a PEM private key (its public half), or the base64 of the raw 32 bytes."""
    data = path.read_bytes()
    key: object
    try:
        if b"PRIVATE KEY" in data:
            key = load_pem_private_key(data, password=None).public_key()
        elif b"PUBLIC KEY" in data:
            key = load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (ValueError, binascii.Error):
        raise ReportError(f"{path}: not an Ed25519 key (PEM, or base64 of the raw 32 bytes)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReportError(f"{path}: not an Ed25519 key")
    return key
