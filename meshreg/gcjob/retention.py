"""Which tags and manifests retention deletes: a pure function of a repository's tags, its indexes and the rules.

The rules are meshreg.retention's (the model meshreg's config reads them into); this is the selection the gc Job
makes with them. Nothing here does I/O.

distribution 2.8 deletes a manifest by digest, and deleting it removes every tag that points at it; so a manifest
is deleted only when no kept tag points at it, directly or through a kept index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshreg.retention import Retention

_RUNS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Tag:
    """A tag of a repository, the manifest it points at, when that image was built and when the registry received
    it under this tag."""

    name: str
    digest: str
    created: float | None = None  # seconds since the epoch, from the image; None: no build time (or the epoch)
    received: float | None = None  # when the tag was last pushed (its link in the registry's storage); None: unknown

    @property
    def age(self) -> float | None:
        """The time retention ages the image by: its build time, else when the registry received it; None when
        neither is known (then it counts as newest: never deleted for its age)."""
        return self.created if self.created is not None else self.received


def natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key comparing the numbers in a tag as numbers: v9 < v10, 1.9 < 1.10, rc2 < rc10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _RUNS.split(name) if part)


@dataclass(frozen=True)
class Plan:
    """What retention does to one repository. `delete_manifests` is in deletion order: indexes before the
    manifests they list, so no moment exists where a tagged index points at a deleted manifest."""

    repository: str
    keep: tuple[str, ...]
    delete_tags: tuple[str, ...]
    delete_manifests: tuple[str, ...]


def _newest_first(tags: Iterable[Tag]) -> list[Tag]:
    """Unknown age first, then by age; on equal ages, the tag that sorts last naturally (v10 before v9)."""
    return sorted(tags, key=lambda t: (t.age is None, t.age or 0.0, natural(t.name), t.name), reverse=True)


def kept_tags(retention: Retention, repository: str, tags: Iterable[Tag], *, now: float) -> set[str]:
    """Names of the tags the rules keep: protected, among the newest N, or newer than the duration."""
    tags = list(tags)
    rule = retention.rule_for(repository)
    if rule is None:
        return {t.name for t in tags}
    keep = {t.name for t in tags if retention.protects(t.name)}
    if rule.keep_newest is not None:
        keep |= {t.name for t in _newest_first(tags)[:rule.keep_newest]}
    seconds = rule.seconds
    if seconds is not None:
        keep |= _younger(tags, seconds=seconds, now=now)
    return keep


def _younger(tags: Iterable[Tag], *, seconds: int, now: float) -> set[str]:
    """Names of the tags younger than `seconds` (built, else received, that recently), and of those of unknown
    age."""
    return {t.name for t in tags if t.age is None or now - t.age < seconds}


def referenced(roots: Iterable[str], children: Mapping[str, Iterable[str]]) -> set[str]:
    """`roots` and every manifest they list, transitively (an index of indexes too)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        digest = todo.pop()
        if digest not in seen:
            seen.add(digest)
            todo.extend(children.get(digest, ()))
    return seen


def select(retention: Retention, repository: str, tags: Iterable[Tag], *,
           children: Mapping[str, Iterable[str]], now: float) -> Plan:
    """The plan for one repository; `children` maps an index's digest to the digests it lists."""
    tags = list(tags)
    keep = kept_tags(retention, repository, tags, now=now)
    kept = referenced((t.digest for t in tags if t.name in keep), children)
    dropped = {t.digest for t in tags if t.name not in keep} - kept
    doomed = referenced(dropped, children) - kept
    return Plan(repository=repository, keep=tuple(sorted(keep)),
                delete_tags=tuple(sorted(t.name for t in tags if t.digest in doomed)),
                delete_manifests=tuple(parents_first(doomed, children)))


def parents_first(digests: set[str], children: Mapping[str, Iterable[str]]) -> list[str]:
    """`digests` ordered so that every index comes before each manifest it lists (Kahn's algorithm)."""
    parents = {d: 0 for d in digests}
    for d in digests:
        for c in set(children.get(d, ())) & digests:
            parents[c] += 1
    ready = sorted(d for d, n in parents.items() if n == 0)
    order: list[str] = []
    while ready:
        d = ready.pop(0)
        order.append(d)
        for c in sorted(set(children.get(d, ())) & digests):
            parents[c] -= 1
            if parents[c] == 0:
                ready.append(c)
    return order
