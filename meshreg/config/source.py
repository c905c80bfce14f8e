"""Reads a YAML document and remembers the line of every key, so config errors can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from meshreg.errors import ConfigError

try:  # the C loader is several times faster; fall back where libyaml is absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


Path = tuple[str | int, ...]  # ("spec", "writers", 2, "serviceAccount")


@dataclass
class Source:
    """A parsed document, its file name, and the line each path starts on."""

    name: str
    data: Any  # the document as PyYAML constructs it; validated by meshreg.config.reader
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def format_path(path: Path) -> str:
    """`("spec", "writers", 2, "serviceAccount")` -> `spec.writers[2].serviceAccount`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse(text: str, name: str) -> Source:
    """Parse one YAML document; syntax errors and duplicate keys raise ConfigError with a line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(name, None, {})
        lines: dict[Path, int] = {}
        _index(node, (), lines, name)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError(f"{where}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: invalid YAML: {e}") from e
    finally:
        loader.dispose()
    return Source(name, data, lines)


def _index(node: yaml.Node, path: Path, lines: dict[Path, int], name: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"{name}:{key_node.start_mark.line + 1}: {format_path(path + (key,))}: duplicate key"
                )
            seen.add(key)
            _index(value_node, path + (key,), lines, name)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines, name)
