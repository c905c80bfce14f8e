"""Typed reads from a parsed YAML document that collect every problem with file, line, field path and what was
expected, so one run reports them all.

A read that finds a problem records it and raises `Invalid`; `attempt` and `guard` catch it, so the reading of
independent fields goes on. A value that could not be read stays unreadable (`Attempt.value` raises `Invalid` again,
silently): whatever depends on it is not checked, and its problems never cascade into more lines. A key that is
missing, or that looks misspelled (`registy` for `registry`), reads as UNREADABLE for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import partial
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

from meshreg.config.source import Path, Problem, Source, format_path
from meshreg.errors import ConfigError

Check = Callable[[str], "str | None"]  # None when a string is fine, else what is wrong with it
T = TypeVar("T")


class Invalid(Exception):
    """What was being read is invalid; its problem is already recorded (never raised before that)."""


class _Unreadable:
    """The value of a key that is missing or misspelled: its problem is recorded, so any read of it stops silently."""

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Any = _Unreadable()


class Attempt(Generic[T]):
    """The outcome of one read: its value, or Invalid (silently) where that read found a problem."""

    __slots__ = ("_value", "ok")

    def __init__(self, value: T | None, *, ok: bool) -> None:
        self._value, self.ok = value, ok

    @property
    def value(self) -> T:
        if not self.ok:
            raise Invalid
        return self._value  # type: ignore[return-value]  # ok: the read returned a T

    def get(self) -> T | None:
        """The value, or None where it could not be read (for checks that skip an unknown input)."""
        return self._value if self.ok else None


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
    """Walks one config document and collects its problems; each names the file, line and field path."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = list(source.problems)

    def fail(self, path: Path, message: str) -> NoReturn:
        """Record a problem at `path` and stop the read that found it."""
        self.record(path, message)
        raise Invalid

    def record(self, path: Path, message: str) -> None:
        """Record a problem at `path` (once: the same line twice is one problem)."""
        line = self.source.line(path)
        where = f"{self.source.name}:{line}" if line else self.source.name
        field = format_path(path)
        problem = Problem(line or 0, f"{where}: {field}: {message}" if field else f"{where}: {message}")
        if problem.text not in (p.text for p in self.problems):
            self.problems.append(problem)

    def attempt(self, read: Callable[[], T]) -> Attempt[T]:
        """Run one read; its problems are recorded and reading goes on."""
        try:
            return Attempt(read(), ok=True)
        except Invalid:
            return Attempt(None, ok=False)

    def each(self, items: list[Any], path: Path, read: Callable[[Any, Path], T]) -> list[Attempt[T]]:
        """`read(item, path of the item)` for every item of a list, each on its own."""
        return [self.attempt(partial(read, item, path + (i,))) for i, item in enumerate(items)]

    @contextmanager
    def checks(self) -> Iterator[None]:
        """Checks that record each problem they find; Invalid at the end if they found any (what they checked cannot
        be used)."""
        before = len(self.problems)
        yield
        if len(self.problems) > before:
            raise Invalid

    def guard(self) -> AbstractContextManager[None]:
        """A check whose problems are recorded, after which reading goes on."""
        return suppress(Invalid)

    def raise_problems(self) -> None:
        """ConfigError with every problem recorded, one line each, in the file's order (problems of the whole file
        first)."""
        if self.problems:
            raise ConfigError.of([p.text for p in sorted(self.problems)])

    def given(self, value: object) -> bool:
        """Whether an optional key is set (not null); Invalid, silently, for a key that cannot be read."""
        if value is UNREADABLE:
            raise Invalid
        return value is not None

    def mapping(self, value: object, path: Path, keys: Mapping[str, object]) -> dict[str, Any]:
        """A mapping whose keys are all in `keys` (a dict of defaults); missing keys take the default.

        A default of `REQUIRED` makes the key mandatory. Every unknown and missing key is a problem; those keys read
        as UNREADABLE, and so does a known key an unknown one looks like a misspelling of.
        """
        if value is None:
            value = {}
        if value is UNREADABLE:
            raise Invalid
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {describe(value)}")
        out = {key: value.get(key, default) for key, default in keys.items()}
        for key in value:
            if key not in keys:
                out.update(self._unknown(key, path, keys, given=value))
        for key, default in keys.items():
            if default is REQUIRED and key not in value:
                self.record(path, f"missing required key {key!r}")
                out[key] = UNREADABLE
        return out

    def _unknown(self, key: object, path: Path, keys: Mapping[str, object], *,
                 given: Mapping[object, object]) -> dict[str, Any]:
        """Record an unknown key; the known key it looks like a misspelling of (if not given too) as UNREADABLE."""
        import difflib  # only for the message: reading a valid file never loads it

        hint = difflib.get_close_matches(str(key), list(keys), n=1)
        known = f"did you mean {hint[0]!r}?" if hint else "known keys: " + ", ".join(keys)
        self.record(path + (str(key),), f"unknown key ({known})")
        return {hint[0]: UNREADABLE} if hint and hint[0] not in given else {}

    def sequence(self, value: object, path: Path, expected: str) -> list[Any]:
        """A list; `expected` says what it should be ("a list of writers (...)") when it is something else."""
        if value is UNREADABLE:
            raise Invalid
        if not isinstance(value, list):
            self.fail(path, f"expected {expected}")
        return value

    @overload
    def string(self, value: object, path: Path, check: Check | None = None, *,
               nullable: Literal[False] = False) -> str: ...

    @overload
    def string(self, value: object, path: Path, check: Check | None = None, *, nullable: bool) -> str | None: ...

    def string(self, value: object, path: Path, check: Check | None = None, *, nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if value is UNREADABLE:
            raise Invalid
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {describe(value)}")
        problem = check(value) if check else None
        if problem:
            self.fail(path, problem)
        return value

    def integer(self, value: object, path: Path, *, low: int, high: int) -> int:
        if value is UNREADABLE:
            raise Invalid
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {describe(value)}")
        if not low <= value <= high:
            self.fail(path, f"{value} is out of range ({low}-{high})")
        return value

    def boolean(self, value: object, path: Path) -> bool:
        if value is UNREADABLE:
            raise Invalid
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {describe(value)}")
        return value

    def strings(self, value: object, path: Path, check: Check | None = None) -> list[str]:
        """A list of strings without duplicates; every item is checked before a problem stops the read."""
        items = self.sequence(value, path, f"a list, got {describe(value)}")
        seen: set[str] = set()
        valid = True
        for i, item in enumerate(items):
            try:
                text = self.string(item, path + (i,), check)
            except Invalid:
                valid = False
                continue
            if text in seen:
                self.record(path + (i,), f"{text!r} is listed twice")
                valid = False
            seen.add(text)
        if not valid:
            raise Invalid
        return list(items)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
