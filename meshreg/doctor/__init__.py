"""`meshreg doctor`: read-only checks of the cluster meshreg lands on, one OK/WARN/FAIL line each with what to do.

Each check group is a module with `check(facts) -> list[Result]`; `run` calls them all at once (they only read, and
share what they read through Facts), reports them in order, and turns a group that cannot read what it needs into
one WARN "could not check" line instead of an error. `PREFLIGHT` names the groups
that can FAIL before anything is deployed: `up` runs those.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass

from meshreg.cluster import parallel
from meshreg.errors import ClusterError

OK, WARN, FAIL = "OK", "WARN", "FAIL"
# check group -> module; the order is the order of the lines
GROUPS = {"api": "api", "istio": "istio", "ambient": "ambient", "ingress": "ingress", "trust-domain": "trustdomain",
          "writers": "writers", "policies": "policies", "nodes": "nodes", "admission": "admission",
          "storage": "storage", "audit": "audit", "bypass": "access", "deployed": "deployed"}
# admission is not among them: `up` sends the same dry run itself, before it changes anything. audit never FAILs:
# `up` runs it to print its warnings.
PREFLIGHT = ("api", "istio", "ambient", "ingress", "trust-domain", "writers", "nodes", "storage", "audit")


@dataclass(frozen=True)
class Result:
    """One line of the report: which check, OK/WARN/FAIL, what was found, and for WARN/FAIL what to do."""

    check: str
    status: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def ok(check: str, message: str) -> Result:
    return Result(check, OK, message)


def warn(check: str, message: str, fix: str) -> Result:
    return Result(check, WARN, message, fix)


def fail(check: str, message: str, fix: str) -> Result:
    return Result(check, FAIL, message, fix)


class Unreachable(ClusterError):
    """The API server cannot be used at all (doctor exits 2, as for bad input)."""

    exit_code = 2


def run(*, facts, groups=None) -> list[Result]:
    """Every check group in `groups` (default: all), in order; raises Unreachable when the server does not answer
    (its version is asked for beside the checks, not before them: one round trip less)."""
    def one(name):
        if name is None:
            return facts.version
        return importlib.import_module(f"meshreg.doctor.{GROUPS[name]}").check(facts)

    answers = parallel.each(one, [None, *(groups or GROUPS)])
    if answers[0][2] is not None:
        raise Unreachable(str(answers[0][2])) from answers[0][2]
    results: list[Result] = []
    for name, found, error in answers[1:]:
        # a ClusterError is e.g. forbidden for a namespace-scoped user: say so, go on
        results += found if error is None else [could_not(name, error)]
    return results


def could_not(check: str, error: Exception) -> Result:
    return warn(check, f"could not check: {error}",
                "run doctor with credentials that may read this (or ask a cluster admin to run it)")


def failed(results) -> list[Result]:
    return [r for r in results if r.status == FAIL]


def exit_code(results) -> int:
    return 1 if failed(results) else 0


def some(items, limit: int = 4) -> str:
    """The first few of a long list, and how many more."""
    items = list(items)
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def counts(results) -> dict:
    return {s: sum(1 for r in results if r.status == s) for s in (OK, WARN, FAIL)}


def text(results, *, header: str) -> str:
    """The human-readable report: one line per result, the fix indented under it, a summary line."""
    width = max([len(r.check) for r in results] + [8])
    lines = [header]
    for r in results:
        lines.append(f"{r.status:<4}  {r.check:<{width}}  {r.message}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    n = counts(results)
    lines.append(f"{n[OK]} OK, {n[WARN]} WARN, {n[FAIL]} FAIL")
    return "\n".join(lines)
