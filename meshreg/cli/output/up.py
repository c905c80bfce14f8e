"""`meshreg up`'s report as people read it: a line per object as it is applied, a summary, and the addresses."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.cluster.outcomes import Outcome
from meshreg.operations.up import Addresses, UpReport

LABEL = 27  # the addresses' labels, padded to one width


def dry_run(server: str) -> str:
    """The line before a dry run's outcomes."""
    return f"server dry run on {server}; nothing is changed"


def outcome_line(outcome: Outcome) -> str:
    """`created     Deployment meshreg/registry`: the action, then the object."""
    return f"{outcome.action:<11} {outcome}"


def summary(counts: dict[str, int], *, dry_run: bool) -> str:
    """`2 created, 15 unchanged` (`dry run: ` first on a dry run), or `nothing to do`."""
    text = ", ".join(f"{n} {action}" for action, n in counts.items())
    return f"{'dry run: ' if dry_run else ''}{text or 'nothing to do'}"


def text(report: UpReport) -> str:
    """The summary line."""
    return summary(report.counts, dry_run=report.dry_run)


def data(report: UpReport) -> dict[str, Any]:
    """The `kind: UpReport` document (docs/output.md): what was applied (or planned), and where to push and pull."""
    return document("UpReport", {
        "server": report.server, "dryRun": report.dry_run, "counts": report.counts,
        "objects": [outcome_data(o) for o in report.outcomes],
        "addresses": [_address_data(a) for a in report.addresses],
        "notes": list(report.notes), "notices": list(report.notices)})


def outcome_data(outcome: Outcome) -> dict[str, Any]:
    """One object and what happened to it (`up` and `down` alike)."""
    return {"apiVersion": outcome.api_version, "kind": outcome.kind, "namespace": outcome.namespace,
            "name": outcome.name, "action": outcome.action, "note": outcome.note}


def _address_data(a: Addresses) -> dict[str, Any]:
    return {"registry": a.registry, "role": a.role, "default": a.default, "push": a.push, "pull": a.pull,
            "writers": list(a.writers),
            "pushProxy": {"port": a.push_proxy.port, "namespace": a.push_proxy.namespace} if a.push_proxy else None,
            "ingress": {"address": a.ingress.address, "clients": list(a.ingress.clients)} if a.ingress else None}


def addresses(report: UpReport) -> str:
    """Where to push and pull, per registry (each under a heading when there are several)."""
    lines = []
    for entry in report.addresses:
        if len(report.addresses) > 1:
            lines.append(f"registry {entry.registry} ({entry.role}{', default' if entry.default else ''}):")
        lines += _address_lines(entry)
    return "\n".join(lines)


def _line(label: str, value: str) -> str:
    return f"{label + ':':<{LABEL}}{value}"


def _address_lines(a: Addresses) -> list[str]:
    lines = [_line("push (in-cluster writers)", a.push),
             _line("pull (pod specs)", a.pull or "none (nodeProxy is disabled)"),
             _line("writers", ", ".join(a.writers) or _no_writers(a.role))]
    if a.push_proxy:
        flag = "" if a.default else f" --registry {a.registry}"
        lines.append(_line("push (from a laptop)", f"meshreg connect{flag}, then localhost:{a.push_proxy.port} "
                           f"(RBAC: Role meshreg-connect in namespace {a.push_proxy.namespace})"))
    if a.ingress:
        lines.append(_line("push (ingress clients)",
                           f"{a.ingress.address} (clients: {', '.join(a.ingress.clients) or 'none'})"))
    return lines


def _no_writers(role: str) -> str:
    return "no writers: nobody can push; run meshreg policy grant NS/SA" if role == "images" else f"nobody ({role})"
