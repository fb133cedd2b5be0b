from __future__ import annotations

import pytest

from medplat.storage import UnsafeKeyError, safe_key
from medplat.urls import without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://medfed:s3cr%40t@127.0.0.1:5432/medfed", "postgresql://medfed@127.0.0.1:5432/medfed"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("amqp://guest:guest@[::1]:5672//", "amqp://guest@[::1]:5672//"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


@pytest.mark.parametrize("key", ["media/2026/a.png", "x", "a-b_c.d/e"])
def test_plain_object_keys_pass(key: str) -> None:
    assert safe_key(key) == key


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../b", "a?b", "a#b", "a\x00b", "a//b", "", ".hidden/..", "a/./b"])
def test_object_keys_that_could_escape_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        safe_key(key)
