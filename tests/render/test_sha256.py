"""The render's SHA-256 (CPython's built-in, not OpenSSL's) gives hashlib's digests."""

from __future__ import annotations

import hashlib

import pytest

from meshreg.render import sha256


@pytest.mark.parametrize("data", [b"", b"abc", b"meshreg-images.registry.ConfigMap.", bytes(range(256)) * 1000])
def test_the_digests_are_hashlibs(data: bytes) -> None:
    assert sha256.digest(data) == hashlib.sha256(data).digest()
    assert sha256.hexdigest(data) == hashlib.sha256(data).hexdigest()


def test_it_is_not_openssls() -> None:
    assert type(sha256._SHA256(b"")).__module__ != "_hashlib"
