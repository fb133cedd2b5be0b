"""The origin's cache of verified federation tokens: a hit only for a token verified before, under the same trust
version, before its `exp`; a refusal is never remembered."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medsync.transport import Minted, TransportError, VerifiedCallers, mint_token, verify_token


@pytest.fixture
def ru_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _counting(token: str, keys: dict[str, Ed25519PublicKey], calls: list[str]) -> Callable[[], str]:
    def verify() -> str:
        calls.append(token)
        return verify_token(token, me="kz", keys=keys)

    return verify


def test_a_token_is_verified_once_per_trust_version(ru_key: Ed25519PrivateKey) -> None:
    cache, calls = VerifiedCallers(), list[str]()
    keys = {"k": ru_key.public_key()}
    token = mint_token("ru", "kz", ru_key)
    trust_v1, trust_v2 = object(), object()
    assert [cache.caller(token, trust_v1, _counting(token, keys, calls)) for _ in range(3)] == ["ru"] * 3
    assert len(calls) == 1
    # A new trust version (say, one that revokes ru's key) is asked again.
    with pytest.raises(TransportError) as refused:
        cache.caller(token, trust_v2, _counting(token, {}, calls))
    assert (refused.value.code, len(calls)) == ("jwt.untrusted", 2)
    with pytest.raises(TransportError):  # and the refusal was not remembered as anything
        cache.caller(token, trust_v2, _counting(token, {}, calls))
    assert len(calls) == 3


def test_an_expired_token_is_verified_again(ru_key: Ed25519PrivateKey) -> None:
    cache, calls = VerifiedCallers(), list[str]()
    keys = {"k": ru_key.public_key()}
    old = mint_token("ru", "kz", ru_key, now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=90))
    trust = object()
    # Accepted within the clock leeway, but past its own `exp`: never served from the cache.
    assert cache.caller(old, trust, _counting(old, keys, calls)) == "ru"
    assert cache.caller(old, trust, _counting(old, keys, calls)) == "ru"
    assert len(calls) == 2


def test_the_cache_is_bounded(ru_key: Ed25519PrivateKey) -> None:
    cache = VerifiedCallers(size=3)
    keys, trust, calls = {"k": ru_key.public_key()}, object(), list[str]()
    tokens = [mint_token("ru", "kz", ru_key) for _ in range(5)]
    for token in tokens:
        cache.caller(token, trust, _counting(token, keys, calls))
    cache.caller(tokens[0], trust, _counting(tokens[0], keys, calls))
    assert len(calls) == 6  # the oldest had gone


def test_minted_reuses_a_token_for_half_its_life(ru_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    minted = Minted("kz", "ru", ru_key)
    first = minted.current()
    assert minted.current() == first
    clock = time.monotonic() + 31
    monkeypatch.setattr("medsync.transport.time.monotonic", lambda: clock)
    second = minted.current()
    assert second != first and verify_token(second, me="ru", keys={"k": ru_key.public_key()}) == "kz"
