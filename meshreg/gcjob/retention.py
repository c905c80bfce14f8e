"""Which tags and manifests retention deletes: a pure function of a repository's tags, its indexes and the rules.

It runs inside the gc Job (standard library only) and meshreg's config reads rules into the same classes, so the
rules a user writes and the rules the Job applies are one thing. Nothing here does I/O.

distribution 2.8 deletes a manifest by digest, and deleting it removes every tag that points at it; so a manifest
is deleted only when no kept tag points at it, directly or through a kept index.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

_DURATION = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": 86400, "h": 3600, "m": 60}


def parse_duration(text: str) -> int | None:
    """'14d', '36h', '1d12h', '90m' -> seconds; None when `text` is not such a duration."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNITS[u] for n, u in parts)


def covers(prefix: str, repository: str) -> bool:
    """'team-a/' covers team-a and everything under team-a/; '*' covers every repository."""
    return prefix == "*" or (repository + "/").startswith(prefix)


@dataclass(frozen=True)
class Rule:
    """Per repository under `repositories`: keep the newest `keep_newest` tags and every tag newer than
    `keep_newer_than` (a duration such as '14d'); the others go."""

    repositories: tuple[str, ...] = ("*",)
    keep_newest: int | None = None
    keep_newer_than: str | None = None

    @property
    def seconds(self) -> int | None:
        return parse_duration(self.keep_newer_than) if self.keep_newer_than else None

    def specificity(self, repository: str) -> int:
        """How closely this rule matches `repository`: the longest covering prefix; -1 when it does not."""
        return max((0 if p == "*" else len(p) for p in self.repositories if covers(p, repository)), default=-1)

    def as_json(self) -> dict:
        out: dict = {"repositories": list(self.repositories)}
        if self.keep_newest is not None:
            out["keepNewest"] = self.keep_newest
        if self.keep_newer_than is not None:
            out["keepNewerThan"] = self.keep_newer_than
        return out


@dataclass(frozen=True)
class Retention:
    rules: tuple[Rule, ...]
    protected_tags: tuple[str, ...] = ()  # shell-style patterns ('latest', 'release-*'): never deleted

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every repository prefix some rule applies to ('*' alone when a rule covers everything)."""
        found = {p for rule in self.rules for p in rule.repositories}
        return ("*",) if "*" in found else tuple(sorted(found))

    def rule_for(self, repository: str) -> Rule | None:
        """The most specific rule covering `repository` (longest prefix; '*' last), or None: keep everything."""
        ranked = [(rule.specificity(repository), i) for i, rule in enumerate(self.rules)]
        best = max((r for r in ranked if r[0] >= 0), default=None)
        return self.rules[best[1]] if best else None

    def protects(self, tag: str) -> bool:
        return any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.protected_tags)

    def as_json(self) -> dict:
        return {"rules": [r.as_json() for r in self.rules], "protectedTags": list(self.protected_tags)}

    @classmethod
    def from_json(cls, data: dict) -> "Retention":
        rules = tuple(Rule(repositories=tuple(r.get("repositories", ["*"])), keep_newest=r.get("keepNewest"),
                           keep_newer_than=r.get("keepNewerThan")) for r in data.get("rules", []))
        return cls(rules=rules, protected_tags=tuple(data.get("protectedTags", [])))


@dataclass(frozen=True)
class Tag:
    name: str
    digest: str
    created: float | None = None  # seconds since the epoch, from the image; None: unknown (treated as newest)


@dataclass(frozen=True)
class Plan:
    """What retention does to one repository. `delete_manifests` is in deletion order: indexes before the
    manifests they list, so no moment exists where a tagged index points at a deleted manifest."""

    repository: str
    keep: tuple[str, ...]
    delete_tags: tuple[str, ...]
    delete_manifests: tuple[str, ...]


def _newest_first(tags: Iterable[Tag]) -> list[Tag]:
    return sorted(tags, key=lambda t: (t.created is None, t.created or 0.0, t.name), reverse=True)


def kept_tags(retention: Retention, repository: str, tags: Iterable[Tag], *, now: float) -> set[str]:
    """Names of the tags the rules keep: protected, among the newest N, or newer than the duration."""
    tags = list(tags)
    rule = retention.rule_for(repository)
    if rule is None:
        return {t.name for t in tags}
    keep = {t.name for t in tags if retention.protects(t.name)}
    if rule.keep_newest is not None:
        keep |= {t.name for t in _newest_first(tags)[:rule.keep_newest]}
    if rule.seconds is not None:
        keep |= {t.name for t in tags if t.created is None or now - t.created < rule.seconds}
    return keep


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
    order = []
    while ready:
        d = ready.pop(0)
        order.append(d)
        for c in sorted(set(children.get(d, ())) & digests):
            parents[c] -= 1
            if parents[c] == 0:
                ready.append(c)
    return order
