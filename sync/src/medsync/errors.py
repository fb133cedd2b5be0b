"""Every reason the sync protocol refuses something, with a stable code.

Codes travel in signed receipts, land in the transfer register and are what the attack tests assert, so
they never change meaning. Messages are for people and never contain personal data.
"""

from __future__ import annotations


class SyncError(Exception):
    """A refusal with a stable machine-readable `code` and a one-line human message."""

    code: str = "sync.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CanonicalError(SyncError):
    """Bytes that are not the canonical JSON we accept (duplicate keys, floats, NaN, lone surrogates...)."""

    code = "body.not_canonical"


class SignatureError(SyncError):
    code = "signature.invalid"


class TrustError(SyncError):
    code = "trust.invalid"


class PolicyError(SyncError):
    code = "policy.refused"


class BorderError(SyncError):
    code = "border.personal_data"
