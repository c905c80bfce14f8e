"""The check groups, in the order of their lines, and `run`, which calls them all at once."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from meshreg.cluster import parallel
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, could_not
from meshreg.errors import ClusterError

# check group -> module; the order is the order of the lines
GROUPS = {"api": "api", "istio": "istio", "ambient": "ambient", "ingress": "ingress", "trust-domain": "trustdomain",
          "writers": "writers", "policies": "policies", "nodes": "nodes", "admission": "admission",
          "storage": "storage", "audit": "audit", "bypass": "access", "deployed": "deployed", "connect": "devloop"}
# admission is not among them: `up` sends the same dry run itself, before it changes anything. audit never FAILs:
# `up` runs it to print its warnings.
PREFLIGHT = ("api", "istio", "ambient", "ingress", "trust-domain", "writers", "nodes", "storage", "audit")


class Unreachable(ClusterError):
    """The API server cannot be used at all (doctor exits 2, as for bad input)."""

    exit_code = 2


def run(*, facts: Facts, groups: Iterable[str] | None = None) -> list[Result]:
    """Every check group in `groups` (default: all), in order; raises Unreachable when the server does not answer
    (its version is asked for beside the checks, not before them: one round trip less)."""
    names = list(groups or GROUPS)
    answers = parallel.each(lambda name: _answer(facts, name), [None, *names])
    unreachable = answers[0][2]
    if unreachable is not None:
        raise Unreachable(str(unreachable)) from unreachable
    results: list[Result] = []
    for name, (_, found, error) in zip(names, answers[1:], strict=True):
        # a ClusterError is e.g. forbidden for a namespace-scoped user: say so, go on
        results += (found or []) if error is None else [could_not(name, error)]
    return results


def _answer(facts: Facts, name: str | None) -> list[Result]:
    """One check group's results; for None, the server's version is read (and nothing to report)."""
    if name is None:
        _ = facts.version  # read for its error: the server does not answer
        return []
    results: list[Result] = importlib.import_module(f"meshreg.doctor.{GROUPS[name]}").check(facts)
    return results
