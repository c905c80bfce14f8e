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


@dataclass(frozen=True, order=True)
class Problem:
    """One line of a config error: where it is (line 0: the whole file), then what is wrong."""

    line: int
    text: str = field(compare=False)


@dataclass
class Source:
    """A parsed document, its file name, the line each path starts on, and the problems parsing found (duplicate
    keys: the document is still read, with the last value of each)."""

    name: str
    data: Any  # the document as PyYAML constructs it; validated by meshreg.config.reader
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

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


def decode(data: bytes, name: str) -> str:
    """The text of a config file, which must be UTF-8; ConfigError naming every line with bytes that are not, each
    as `file:line:column` with the bad byte and its offset in the file."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    problems, seen, start = [], set(), 0
    while start < len(data):
        try:
            data[start:].decode("utf-8")
            break
        except UnicodeDecodeError as e:
            at = start + e.start
            line = data.count(b"\n", 0, at) + 1
            if line not in seen:
                seen.add(line)
                column = len(data[data.rfind(b"\n", 0, at) + 1:at].decode("utf-8", "replace")) + 1
                problems.append(f"{name}:{line}:{column}: cannot read: byte 0x{data[at]:02x} (offset {at}) is not "
                                "UTF-8; save the file as UTF-8")
            start += e.end
    raise ConfigError.of(problems)


def parse(text: str, name: str) -> Source:
    """Parse one YAML document; a syntax error raises ConfigError with its line, duplicate keys are problems of the
    Source (each with its line)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(name, None, {})
        lines: dict[Path, int] = {}
        problems: list[Problem] = []
        _index(node, (), lines, problems, name)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError(f"{where}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: invalid YAML: {e}") from e
    finally:
        loader.dispose()
    return Source(name, data, lines, problems)


def _index(node: yaml.Node, path: Path, lines: dict[Path, int], problems: list[Problem], name: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(Problem(line, f"{name}:{line}: {format_path(path + (key,))}: duplicate key"))
            seen.add(key)
            _index(value_node, path + (key,), lines, problems, name)
            lines[path + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines, problems, name)
