"""Typed reads from a parsed YAML document that fail with file, line, field path and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn, overload

from meshreg.config.source import Path, Source, format_path
from meshreg.errors import ConfigError

Check = Callable[[str], "str | None"]  # None when a string is fine, else what is wrong with it


def describe(value: object) -> str:
    """How a YAML value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()} (quote it if you meant a string)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Reader:
    """Walks one config document; every failure names the file, line and field path."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def fail(self, path: Path, message: str) -> NoReturn:
        line = self.source.line(path)
        where = f"{self.source.name}:{line}" if line else self.source.name
        field = format_path(path)
        raise ConfigError(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def mapping(self, value: object, path: Path, keys: Mapping[str, object]) -> dict[str, Any]:
        """A mapping whose keys are all in `keys` (a dict of defaults); missing keys take the default.

        A default of `REQUIRED` makes the key mandatory.
        """
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {describe(value)}")
        for key in value:
            if key not in keys:
                hint = difflib.get_close_matches(str(key), list(keys), n=1)
                known = f"did you mean {hint[0]!r}?" if hint else "known keys: " + ", ".join(keys)
                self.fail(path + (key,), f"unknown key ({known})")
        out = {}
        for key, default in keys.items():
            if key in value:
                out[key] = value[key]
            elif default is REQUIRED:
                self.fail(path, f"missing required key {key!r}")
            else:
                out[key] = default
        return out

    @overload
    def string(self, value: object, path: Path, check: Check | None = None, *,
               nullable: Literal[False] = False) -> str: ...

    @overload
    def string(self, value: object, path: Path, check: Check | None = None, *, nullable: bool) -> str | None: ...

    def string(self, value: object, path: Path, check: Check | None = None, *, nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {describe(value)}")
        problem = check(value) if check else None
        if problem:
            self.fail(path, problem)
        return value

    def integer(self, value: object, path: Path, *, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {describe(value)}")
        if not low <= value <= high:
            self.fail(path, f"{value} is out of range ({low}-{high})")
        return value

    def boolean(self, value: object, path: Path) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {describe(value)}")
        return value

    def strings(self, value: object, path: Path, check: Check | None = None) -> list[str]:
        """A list of strings without duplicates."""
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {describe(value)}")
        seen: set[str] = set()
        for i, item in enumerate(value):
            self.string(item, path + (i,), check)
            if item in seen:
                self.fail(path + (i,), f"{item!r} is listed twice")
            seen.add(item)
        return list(value)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
