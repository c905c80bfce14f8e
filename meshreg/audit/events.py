"""One audit record as an event of the trail: what was written (or refused), where, and who did it.

Actions: `push` (a manifest PUT: repository, tag, Docker-Content-Digest), `delete` (a manifest or blob), `blob` (a
blob upload completed), `mount` (a blob mounted from another repository), `upload` (an upload opened or continued),
`write` (any other accepted write), `refused` (403/401: by which policy or check), `redirected` (the registry
cleaned the path and acted on nothing), `failed` (any other error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from meshreg.audit.identity import Who
from meshreg.audit.paths import Target, target
from meshreg.audit.records import Record

_ISTIO_RULE: Final = re.compile(r"ns\[(?P<ns>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[(?P<rule>\d+)\]")
_DENIED: Final = "rbac_access_denied_matched_policy["
_WRITTEN: Final = {("PUT", "manifest"): "push", ("DELETE", "manifest"): "delete", ("DELETE", "blob"): "delete",
                   ("PUT", "upload"): "blob", ("PATCH", "upload"): "upload"}


@dataclass(frozen=True)
class Event:
    """A write or a refusal, as the trail shows it."""

    time: datetime
    action: str
    who: Who
    method: str
    path: str  # as the proxy forwarded it (normalized, %2F still encoded)
    code: int
    target: Target  # what the registry acts on for that path
    digest: str | None = None  # what was written or deleted
    why: str | None = None  # refused: the policy rule (NS/NAME rule N) or check; redirected, failed: what happened
    source: str | None = None  # the connection's peer address, which the client cannot choose
    request_id: str | None = None
    proxy: str = ""  # which proxy logged it: `registry sidecar`, `waypoint`, `ingress gateway`
    pod: str | None = None
    via: str | None = None  # the hop a request came through (`ingress gateway`) when that hop's record told who

    @property
    def repository(self) -> str | None:
        return self.target.repository

    @property
    def mounted_from(self) -> str | None:
        return self.target.param("from") if self.action == "mount" else None


def refused_by(details: str | None) -> str | None:
    """Who refused, from Envoy's response code details: an AuthorizationPolicy rule, or a check such as a token."""
    if not details:
        return None
    if details.startswith(_DENIED):
        inner = details[len(_DENIED):].removesuffix("]")
        match = _ISTIO_RULE.fullmatch(inner)
        if match:
            return f"{match['ns']}/{match['name']} rule {match['rule']}"
        return "no ALLOW rule matched" if inner == "none" else inner
    return details


def _action(record: Record, where: Target) -> str:
    code = record.code
    if code in (401, 403):
        return "refused"
    if where.route == "redirect" and 300 <= code < 400:
        return "redirected"
    if not 200 <= code < 300:
        return "failed"
    if record.method == "POST" and where.route == "upload":
        return "mount" if code == 201 and where.param("mount") else "upload"
    return _WRITTEN.get((record.method, where.route), "write")


def _digest(record: Record, where: Target, action: str) -> str | None:
    """The digest written or deleted: the registry's Docker-Content-Digest, else the one the request names."""
    if record.digest:
        return record.digest
    if action == "delete":
        return where.reference
    if action == "mount":
        return where.param("mount")
    return where.param("digest") if action in ("blob", "refused") else None


def _why(record: Record, where: Target, action: str) -> str | None:
    if action == "refused":
        return refused_by(record.details)
    if action == "redirected":
        return f"the registry redirected it to {where.path} and wrote nothing"
    if action == "failed":
        if record.details == "via_upstream":
            return f"the registry answered {record.code}"
        flags = f" ({record.flags})" if record.flags and record.flags != "-" else ""
        return f"{record.details or 'no response'}{flags}"
    return None


def event(record: Record, who: Who, *, proxy: str) -> Event:
    """The event of one record logged by `proxy`."""
    where = target(record.path)
    action = _action(record, where)
    return Event(time=record.time, action=action, who=who, method=record.method, path=record.path, code=record.code,
                 target=where, digest=_digest(record, where, action), why=_why(record, where, action),
                 source=record.source_address, request_id=record.request_id, proxy=proxy, pod=record.pod)
