"""Loading `meshreg.yaml`: find the file, parse it with line positions, validate it into a Config."""

from __future__ import annotations

import os

from meshreg.config.model import DEFAULT, DEFAULT_FILE, Config
from meshreg.errors import ConfigError


def load(path: str | None = None) -> Config:
    """Load `path`; with None, `meshreg.yaml` if it exists (or $MESHREG_CONFIG), else the built-in default."""
    if path is None:
        if not os.path.exists(DEFAULT_FILE):
            return DEFAULT
        path = DEFAULT_FILE
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such file (run `meshreg init` to write a starter config)") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    # Imported here: the built-in default (no file) never pays for the YAML parser.
    from meshreg.config.source import decode

    return from_text(decode(data, path), name=path)


def from_text(text: str, *, name: str) -> Config:
    """Validate a config document; ConfigError names every problem found, each with file, line and field."""
    # Imported here: the built-in default (no file) never pays for the parser and the validators.
    from meshreg.config.reader import Invalid, Reader
    from meshreg.config.source import parse
    from meshreg.config.spec import read_config

    source = parse(text, name)
    if source.data is None:
        raise ConfigError(f"{name}: the file is empty (run `meshreg init` to write a starter config)")
    reader = Reader(source)
    try:
        cfg = read_config(reader, source.data, name)
    except Invalid:  # raised only once its problem is recorded
        cfg = None
    reader.raise_problems()
    assert cfg is not None
    return cfg
