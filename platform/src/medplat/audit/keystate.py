"""Key changes in the node's audit log: the key that signs its heads, and the federation trust version it uses.

The node notices a change when it next signs its head (`log.checkpoint`: beat every five minutes, or `medfed
audit checkpoint`). Before the head is signed, under the log's lock, one `key_change` leaf is appended

- `{"change": "signing_key", "key_id": K, "previous": P}` when the signing key differs from the last one the
  log announces (P is null the first time), and
- `{"change": "trust_version", "version": N, "previous": M, "threshold": t, "added": [...], "removed": [...]}`
  when the trust file version the node has adopted differs from the last one logged; `added` and `removed`
  name keys as `<region>:<key id>` against the key set the earlier trust leaves add up to, so the log alone
  tells which keys each version brought and revoked.

So every checkpoint's log announces the key that signed it (`medfed audit verify` checks this), and a key
rotation or new trust version reaches the log within one checkpoint interval, whoever made it and however.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from medplat.audit.log import AuditKind, append_many
from medplat.audit.models import AuditLeaf
from medsync.envelope import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from medsync.trust import TrustDocument

SIGNING_KEY = "signing_key"
TRUST_VERSION = "trust_version"


@dataclass
class Logged:
    """What the log's key_change leaves say so far."""

    signing_key: str | None = None
    trust_version: int | None = None
    trusted: set[str] = field(default_factory=set)

    def take(self, payload: dict[str, Any]) -> None:
        if payload.get("change") == SIGNING_KEY:
            self.signing_key = payload.get("key_id")
        elif payload.get("change") == TRUST_VERSION:
            self.trust_version = payload.get("version")
            self.trusted = (self.trusted | set(payload.get("added", ()))) - set(payload.get("removed", ()))


def logged(session: Session) -> Logged:
    """Fold the log's key_change leaves (a handful over a node's life; `kind` is indexed)."""
    state = Logged()
    for entry in session.scalars(select(AuditLeaf.entry).where(AuditLeaf.kind == str(AuditKind.KEY_CHANGE)).order_by(AuditLeaf.idx)):
        state.take(msgspec.json.decode(entry)["payload"])
    return state


def trusted_keys(trust: TrustDocument) -> set[str]:
    return {f"{region}:{key_id(key.public())}" for region, node in trust.nodes.items() for key in node.keys}


def changes(state: Logged, signing_key: Ed25519PublicKey, trust: TrustDocument | None) -> list[dict[str, Any]]:
    """The key_change payloads that bring the log up to date with the node's key and trust version."""
    found: list[dict[str, Any]] = []
    current = key_id(signing_key)
    if current != state.signing_key:
        found.append({"change": SIGNING_KEY, "key_id": current, "previous": state.signing_key})
    if trust is not None and trust.version != state.trust_version:
        keys = trusted_keys(trust)
        found.append(
            {
                "change": TRUST_VERSION,
                "version": trust.version,
                "previous": state.trust_version,
                "threshold": trust.threshold,
                "added": sorted(keys - state.trusted),
                "removed": sorted(state.trusted - keys),
            }
        )
    return found


def record(session: Session, signing_key: Ed25519PublicKey, trust: TrustDocument | None) -> list[int]:
    """Append the key changes the log has not seen yet; the caller holds the log's lock (read, then append)."""
    pending = changes(logged(session), signing_key, trust)
    return append_many(session, [(AuditKind.KEY_CHANGE, payload) for payload in pending]) if pending else []
