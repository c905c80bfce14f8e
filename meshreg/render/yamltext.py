"""YAML text of a registry's config.yml (held in its ConfigMap, hashed into its Deployment): the bytes
`yaml.safe_dump` writes, from libyaml's emitter, several times faster than PyYAML's own.

The two emitters agree on every document of printable ASCII, which is all a config.yml holds (names, URLs, paths
and numbers, each validated); they do differ on long double-quoted strings with escapes, so text a user writes
freely (the published help) keeps PyYAML's emitter. tests/render/test_yamltext.py holds them to the same bytes.
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # PyYAML's wheels include libyaml; a build without it falls back on the pure-Python emitter
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]


def safe_dump(data: object, **options: Any) -> str:
    """`yaml.safe_dump(data, **options)` for a document of printable ASCII."""
    text: str = yaml.dump(data, Dumper=_Dumper, **options)
    return text
