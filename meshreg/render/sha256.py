"""SHA-256 of the names and hashes a render writes (the ApplySet id, config hashes), without `import hashlib`.

hashlib loads OpenSSL's libcrypto when it is imported, which is 2 ms of a 55 ms render. CPython has SHA-256 built
in as well (the module hashlib falls back on), with the same digests; other Pythons use hashlib.
"""

from __future__ import annotations

import importlib
from typing import Any


def _constructor() -> Any:
    for module in ("_sha2", "_sha256"):  # CPython 3.12 and later; 3.10 and 3.11
        try:
            return importlib.import_module(module).sha256
        except (ImportError, AttributeError):
            continue
    from hashlib import sha256  # pragma: no cover  # another Python

    return sha256  # pragma: no cover


_SHA256 = _constructor()


def digest(data: bytes) -> bytes:
    """SHA-256 of `data`."""
    return bytes(_SHA256(data).digest())


def hexdigest(data: bytes) -> str:
    """SHA-256 of `data`, in hex."""
    return str(_SHA256(data).hexdigest())
