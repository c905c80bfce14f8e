"""`meshreg audit`'s report as people read it (one line per write or refusal, then where the records come from and
how far back they reach) and as -o json and -o yaml print it (every event, upload steps included)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meshreg.audit import Event
from meshreg.cli.output.document import document
from meshreg.operations.audit import AuditReport, PodLog

HIDDEN = ("upload",)  # upload steps (POST, PATCH): their outcome is the blob line; -o json lists them


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _written(e: Event, repo: str) -> str:
    if e.action == "push":
        return f"{repo}{':' + e.target.tag if e.target.tag else ''}@{e.digest or '?'}"
    if e.action == "delete":
        return f"{repo}@{e.digest}" + (" (blob)" if e.target.route == "blob" else "")
    mounted = f" (mounted from {e.mounted_from})" if e.mounted_from else ""
    return f"{repo} blob {e.digest or '?'}{mounted}"


def what(e: Event) -> str:
    """The WHAT column: the repository, tag and digest written, or what was refused and why."""
    repo = e.repository or e.target.path
    if e.action in ("push", "delete", "blob", "mount"):
        return _written(e, repo)
    if e.action in ("upload", "write"):
        return f"{e.method} {repo}"
    if e.action == "redirected":  # the path as sent: the trick is the point
        return f"{e.method} {e.path}: {e.why}"
    return f"{e.method} {repo}: {e.why}" if e.why else f"{e.method} {repo} ({e.code})"


def _runs(p: PodLog) -> str:
    runs = [f"restarted {p.restarts} time(s)", "the previous run's log was read" if p.previous else "",
            f"the logs of {p.lost_runs} earlier run(s) are gone" if p.lost_runs else ""]
    return ", ".join(r for r in runs if r)


def _source_line(p: PodLog) -> str:
    head = f"{p.proxy} {p.namespace}/{p.pod}"
    if p.problem:
        return f"{head}: not read: {p.problem}"
    parts = [f"{p.records} record(s)" + (f" since {_time(p.oldest)}" if p.oldest else ""),
             f"container started {_time(p.started)}" if p.started else "container start unknown",
             _runs(p) if p.restarts else ""]
    if p.rotated:
        parts.append(f"the kubelet rotated its first lines away (it keeps lines from {_time(p.first_line)})")
    elif p.started:
        parts.append("its log is complete since then")
    return f"{head}: " + "; ".join(part for part in parts if part)


def _header(report: AuditReport) -> str:
    q = report.query
    filters = [f"since {_time(q.since)}" if q.since else "", f"repository {q.repository}" if q.repository else "",
               f"by {q.who}" if q.who else ""]
    shown = ", ".join(f for f in filters if f)
    return (f"meshreg audit: registry {report.registry} (namespace {report.namespace}) on {report.server}"
            + (f", {shown}" if shown else ""))


def _table(events: list[Event]) -> list[str]:
    rows = [(_time(e.time) or "", e.action, e.who.name, e.source or "-", what(e)) for e in events]
    heads = ("TIME", "ACTION", "WHO", "FROM", "WHAT")
    widths = [max([len(r[i]) for r in rows] + [len(heads[i])]) for i in range(4)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:<{widths[3]}}  {w}".rstrip()
            for a, b, c, d, w in [heads, *rows]]


def text(report: AuditReport) -> str:
    shown = [e for e in report.events if e.action not in HIDDEN]
    lines = [_header(report)]
    lines += _table(shown) if shown else ["no writes or refusals recorded"]
    steps = len(report.events) - len(shown)
    if steps:
        lines.append(f"(and {steps} upload step(s): -o json lists every record)")
    lines.append("records from:")
    lines += [f"  {_source_line(p)}" for p in report.logs] or ["  no proxy of this registry was found"]
    reach = f"back to {_time(report.oldest)}" if report.oldest else "no record at all"
    lines.append(f"the trail reaches {reach}; older records, and those of pods that are gone, are only where "
                 "the proxies' logs were shipped (docs/audit.md)")
    if report.malformed_count:
        lines.append(f"warning: {report.malformed_count} audit line(s) are not valid v1 records, e.g. "
                     + "; ".join(report.malformed))
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _event(e: Event) -> dict[str, Any]:
    who = {"name": e.who.name, "kind": e.who.kind, "principal": e.who.principal, "issuer": e.who.issuer,
           "subject": e.who.subject}
    return {"time": _time(e.time), "action": e.action, "who": who, "method": e.method, "path": e.path,
            "repository": e.repository, "tag": e.target.tag, "reference": e.target.reference, "digest": e.digest,
            "mountedFrom": e.mounted_from, "code": e.code, "why": e.why, "sourceAddress": e.source,
            "requestId": e.request_id, "proxy": e.proxy, "pod": e.pod}


def _log(p: PodLog) -> dict[str, Any]:
    return {"proxy": p.proxy, "namespace": p.namespace, "pod": p.pod, "started": _time(p.started),
            "restarts": p.restarts, "previousRead": p.previous, "lostRuns": p.lost_runs,
            "firstLine": _time(p.first_line), "records": p.records, "oldest": _time(p.oldest),
            "newest": _time(p.newest), "rotated": p.rotated, "problem": p.problem}


def data(report: AuditReport) -> dict[str, Any]:
    """The `kind: AuditReport` document (docs/output.md)."""
    q = report.query
    return document("AuditReport", {"server": report.server, "config": report.config, "registry": report.registry,
            "namespace": report.namespace,
            "query": {"since": _time(q.since), "repository": q.repository, "who": q.who},
            "recording": report.recording, "events": [_event(e) for e in report.events],
            "sources": [_log(p) for p in report.logs], "oldest": _time(report.oldest), "notes": list(report.notes),
            "malformed": {"count": report.malformed_count, "first": list(report.malformed)}, "ok": report.ok})
