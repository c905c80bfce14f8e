"""The CA directory's public files, read without the cryptography package (config loading reads them)."""

from __future__ import annotations

import os
from pathlib import Path

CA_CERT, CA_KEY, CA_CRL, INDEX = "ca.crt", "ca.key", "ca.crl", "index.json"


def public_material(directory: str | os.PathLike[str]) -> tuple[str, str] | None:
    """The CA certificate and CRL as PEM text, or None when `directory` holds no CA yet."""
    try:
        return (Path(directory) / CA_CERT).read_text(), (Path(directory) / CA_CRL).read_text()
    except FileNotFoundError:
        return None
