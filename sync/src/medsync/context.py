"""What the sync code of one node needs, built once per process from the node's settings.

Everything here runs with the sync database role, which has no privilege on the `personal` schema.
"""

from __future__ import annotations

import datetime
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from medplat.config import Settings, get_settings
from medplat.db.engine import sync_engine
from medplat.node import object_store
from medplat.storage import ObjectStore
from medsync.envelope import key_id
from medsync.errors import SyncError
from medsync.transport import VerifiedCallers, checked_peer_url
from medsync.trust import TrustDocument, load_chain


@dataclass
class SyncContext:
    region: str
    key: Ed25519PrivateKey
    trust_dir: Path
    peers: dict[str, str]
    store: ObjectStore
    shared_bucket: str
    engine: Engine
    federation_ca_file: str | None = None
    """The PEM bundle peers' TLS certificates are verified against (None: the system trust store)."""
    callers: VerifiedCallers = field(default_factory=VerifiedCallers, repr=False)
    """Federation tokens already verified (medsync.api)."""
    _trust: tuple[float, TrustDocument] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def trust(self, now: datetime.datetime | None = None) -> TrustDocument:
        """The latest verified trust version (reloaded when a new version file appears)."""
        now = now or datetime.datetime.now(datetime.UTC)
        stamp = max((p.stat().st_mtime for p in self.trust_dir.glob("*.trust.json")), default=0.0)
        with self._lock:
            if self._trust is None or self._trust[0] != stamp:
                self._trust = (stamp, load_chain(self.trust_dir, now=now))
            return self._trust[1]

    def keys_of(self, region: str, now: datetime.datetime | None = None) -> dict[str, Ed25519PublicKey]:
        now = now or datetime.datetime.now(datetime.UTC)
        return self.trust(now).keys_for(region, now)

    def url_of(self, region: str) -> str:
        """The base URL to call `region` at (MEDFED_PEERS, else the trust file); refused unless https:// or loopback."""
        if region in self.peers:
            return checked_peer_url(region, self.peers[region])
        node = self.trust().nodes.get(region)
        if node is None or not node.url:
            raise SyncError(f"no URL is known for the {region} node", code="federation.unknown_peer")
        return checked_peer_url(region, node.url.rstrip("/"))

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())

    def peers_in_trust(self) -> list[str]:
        return sorted(r for r in self.trust().nodes if r != self.region)


def context_for(settings: Settings) -> SyncContext:
    return SyncContext(
        region=settings.region.code,
        key=settings.signing_key,
        trust_dir=Path(settings.trust_dir),
        peers=dict(settings.peers),
        store=object_store(settings),
        shared_bucket=settings.shared_bucket,
        engine=_sync_role_engine(settings.sync_database_url),
        federation_ca_file=settings.federation_ca_file or None,
    )


@functools.cache
def _sync_role_engine(url: str) -> Engine:
    return sync_engine(url, pool_size=5, max_overflow=5)


@functools.cache
def default_context() -> SyncContext:
    return context_for(get_settings())
