"""The retention model: which repositories a rule covers and how long it keeps their tags.

meshreg's config reads a registry's `retention` into these classes and the gc Job (meshreg.gcjob) reads them back
from its plan, so the rules a user writes and the rules the Job applies are one thing. Standard library only: this
module is shipped to the Job with meshreg/gcjob (see meshreg/render/gc.py) and runs there under the same name.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Retention", "Rule", "covers", "parse_duration"]

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

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repositories": list(self.repositories)}
        if self.keep_newest is not None:
            out["keepNewest"] = self.keep_newest
        if self.keep_newer_than is not None:
            out["keepNewerThan"] = self.keep_newer_than
        return out


@dataclass(frozen=True)
class Retention:
    """A registry's retention rules, and the tags no rule may delete."""

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

    def as_json(self) -> dict[str, Any]:
        return {"rules": [r.as_json() for r in self.rules], "protectedTags": list(self.protected_tags)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Retention:
        rules = tuple(Rule(repositories=tuple(r.get("repositories", ["*"])), keep_newest=r.get("keepNewest"),
                           keep_newer_than=r.get("keepNewerThan")) for r in data.get("rules", []))
        return cls(rules=rules, protected_tags=tuple(data.get("protectedTags", [])))
