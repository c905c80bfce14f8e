"""The trail of one registry: the events of every proxy's records, in time order, each request told once.

A write through the ingress is logged twice: by the gateway, which verified the client (its certificate or token),
and by the registry's sidecar, which only sees the gateway's identity. The trail keeps the gateway's event and drops
the sidecar's copy of the same request (same x-request-id, method and path, from the gateway's identity). A sidecar
record from the gateway with no gateway record to match (the gateway's log was not read, or rotated away) stays,
naming the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from meshreg.audit.events import Event, event
from meshreg.audit.identity import identify
from meshreg.audit.records import Record
from meshreg.config.model import Config, Registry
from meshreg.config.names import normalize_prefix

GATEWAY = "ingress gateway"


@dataclass(frozen=True)
class Query:
    """Which events to keep: since a time, touching a repository prefix, by an identity (any of its spellings)."""

    since: datetime | None = None
    repository: str | None = None  # a prefix as writers take them: "team-a" covers team-a and team-a/...
    who: str | None = None

    def keeps(self, e: Event) -> bool:
        if self.since and e.time < self.since:
            return False
        if self.who and not e.who.answers_to(self.who):
            return False
        if self.repository is None:
            return True
        prefix = normalize_prefix(self.repository)
        return any(r is not None and (r + "/").startswith(prefix) for r in (e.repository, e.mounted_from))


def _key(e: Event) -> tuple[str | None, str, str]:
    return e.request_id, e.method, e.path


def _dedupe(gateway: list[Event], others: list[Event]) -> list[Event]:
    """Drop a sidecar event that repeats a gateway event (one gateway record per key, or the match is unsure)."""
    counts: dict[tuple[str | None, str, str], int] = {}
    for e in gateway:
        counts[_key(e)] = counts.get(_key(e), 0) + 1
    return [e for e in others if not (e.who.kind == "ingress-gateway" and e.request_id
                                      and counts.get(_key(e)) == 1)]


def trail(batches: Iterable[tuple[str, Iterable[Record]]], *, cfg: Config, registry: Registry,
          query: Query = Query()) -> list[Event]:
    """Every kept event of (proxy, records) batches, oldest first."""
    gateway: list[Event] = []
    others: list[Event] = []
    for proxy, records in batches:
        found = [event(r, identify(r, cfg, registry), proxy=proxy) for r in records]
        (gateway if proxy == GATEWAY else others).extend(found)
    events = gateway + _dedupe(gateway, others)
    return sorted((e for e in events if query.keeps(e)), key=lambda e: (e.time, e.proxy, e.path))
