"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint), signed with timestamped Ed25519 cosignatures.

A checkpoint is three lines: origin, tree size, base64 root hash. Every signature on it, the node's own and
the other nodes', is a `cosignature/v1` (c2sp.org/tlog-cosignature): Ed25519 over "cosignature/v1\\ntime
<t>\\n" + the body, so each carries the signer's own timestamp. The node's key also signs DSSE envelopes and
JWTs; their signed messages start with "DSSEv1 " and a base64url header, so no signature of one kind is
ever a valid signature of another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medplat.audit.merkle import HASH_SIZE
from medsync.errors import SyncError

COSIGNATURE_V1 = 0x04
"""The signed-note signature type of Ed25519 cosignatures; also the byte in their key id."""
MAX_TIMESTAMP = 2**63 - 1
MAX_NOTE_BYTES = 16 * 1024
MAX_SIGNATURES = 16

_SIGNATURE_BYTES = 4 + 8 + 64
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_NAME = re.compile(r"[^\s+]{1,200}")


class NoteError(SyncError):
    """A checkpoint or signature we do not accept; the message says why in one line."""

    code = "audit.note"


def origin_of(region: str) -> str:
    """The origin line of a node's audit log."""
    return f"medfed.dev/audit/{region}"


def signer_of(region: str) -> str:
    """The key name a node signs (its own and others') checkpoints under."""
    return f"medfed.dev/node/{region}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n".encode()

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Strictly the three lines we write: a second spelling of the same head is refused."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("checkpoint is not UTF-8") from None
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise NoteError("a checkpoint body is exactly three lines: origin, size, root hash")
        origin, size, root = lines[:3]
        if not origin or origin.strip() != origin:
            raise NoteError("checkpoint origin line is empty or padded")
        if not _SIZE.fullmatch(size) or int(size) > MAX_TIMESTAMP:
            raise NoteError("checkpoint size is not a decimal without leading zeros")
        raw = _b64(root, "checkpoint root hash")
        if len(raw) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash has {len(raw)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size), raw)


@dataclass(frozen=True, slots=True)
class Cosignature:
    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id + self.timestamp.to_bytes(8, "big") + self.signature
        return f"\u2014 {self.name} {base64.b64encode(blob).decode('ascii')}\n"


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_V1]) + public_key.public_bytes_raw()).digest()[:4]


def signed_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint.body()


def cosign(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey, timestamp: int) -> Cosignature:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("timestamp out of range")
    return Cosignature(name, key_id(name, key.public_key()), timestamp, key.sign(signed_message(checkpoint, timestamp)))


def verify(checkpoint: Checkpoint, signature: Cosignature, name: str, keys: Iterable[Ed25519PublicKey]) -> Ed25519PublicKey:
    """The key that made `signature` under `name`, or NoteError: the name and key id must match, then the signature."""
    if signature.name != name:
        raise NoteError(f"signed by {signature.name!a}, expected {name}")
    for public in keys:
        if key_id(name, public) != signature.key_id:
            continue
        try:
            public.verify(signature.signature, signed_message(checkpoint, signature.timestamp))
        except InvalidSignature:
            continue
        return public
    raise NoteError(f"no valid signature by a trusted key of {name}")


def format_note(checkpoint: Checkpoint, signatures: Iterable[Cosignature]) -> str:
    return checkpoint.body().decode() + "\n" + "".join(s.line() for s in signatures)


def parse_note(text: str) -> tuple[Checkpoint, list[Cosignature]]:
    """A signed checkpoint: the body, a blank line, then one or more `— name base64` lines (not yet verified)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteError(f"a signed note is at most {MAX_NOTE_BYTES} bytes")
    body, sep, tail = text.partition("\n\n")
    if not sep or not tail.endswith("\n"):
        raise NoteError("a signed note is a body, a blank line and newline-terminated signature lines")
    checkpoint = Checkpoint.parse((body + "\n").encode("utf-8", "surrogatepass"))
    lines = tail[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    signatures = [_parse_signature(line) for line in lines]
    return checkpoint, signatures


def _parse_signature(line: str) -> Cosignature:
    dash, _, rest = line.partition(" ")
    name, _, blob = rest.partition(" ")
    if dash != "\u2014" or not _NAME.fullmatch(name) or not blob:
        raise NoteError("a signature line is '\u2014 <name> <base64>'")
    raw = _b64(blob, "signature")
    if len(raw) != _SIGNATURE_BYTES:
        raise NoteError(f"a cosignature/v1 signature has {_SIGNATURE_BYTES} bytes, this one {len(raw)}")
    timestamp = int.from_bytes(raw[4:12], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError("signature timestamp out of range")
    return Cosignature(name, raw[:4], timestamp, raw[12:])


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw
