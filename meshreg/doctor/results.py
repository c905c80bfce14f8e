"""What doctor reports: one Result per line (OK, WARN or FAIL, with what to do), and the DoctorReport of one run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Result:
    """One line of the report: which check, OK/WARN/FAIL, what was found, and for WARN/FAIL what to do."""

    check: str
    status: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(check: str, message: str) -> Result:
    return Result(check, OK, message)


def warn(check: str, message: str, fix: str) -> Result:
    return Result(check, WARN, message, fix)


def fail(check: str, message: str, fix: str) -> Result:
    return Result(check, FAIL, message, fix)


def could_not(check: str, error: Exception | str) -> Result:
    return warn(check, f"could not check: {error}",
                "run doctor with credentials that may read this (or ask a cluster admin to run it)")


def failed(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.status == FAIL]


def exit_code(results: Iterable[Result]) -> int:
    return 1 if failed(results) else 0


def some(items: Iterable[str], limit: int = 4) -> str:
    """The first few of a long list, and how many more."""
    items = list(items)
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def counts(results: Iterable[Result]) -> dict[str, int]:
    results = list(results)
    return {s: sum(1 for r in results if r.status == s) for s in (OK, WARN, FAIL)}


@dataclass(frozen=True)
class DoctorReport:
    """One `meshreg doctor` run: the server and config it checked, and every result in the order of the checks."""

    server: str
    config: str  # where the config came from (a path or <built-in default>)
    namespace: str
    results: tuple[Result, ...]

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.results)

    @property
    def ok(self) -> bool:
        """Nothing FAILed (WARN lines do not count against it)."""
        return not failed(self.results)

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)
