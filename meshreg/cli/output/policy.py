"""`policy list`, `policy check` and `policy grant|revoke` for people (text) and for -o json (data)."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.config import Writer
from meshreg.operations.policy import CheckReport, EditReport
from meshreg.policy.listing import ClientEntry, IngressEntry, Listing, PushProxyEntry

__all__ = ["check_data", "check_text", "edit_text", "listing_data", "listing_text"]


def listing_data(listing: Listing) -> dict[str, Any]:
    """The `kind: PolicyListing` document (docs/output.md)."""
    reg, np = listing.registry, listing.node_proxy
    return document("PolicyListing", {
        "config": listing.source, "namespace": listing.namespace, "trustDomain": listing.trust_domain,
        "registry": {"name": reg.name, "role": reg.role, "default": reg.default, "publisher": reg.publisher},
        "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories), "delete": w.delete,
                     "push": w.push, "principal": w.principal} for w in listing.writers],
        "readers": [{"reader": r.reader, "principal": r.principal} for r in listing.readers],
        "nodeProxy": {"enabled": np.enabled, "port": np.port, "hostIP": np.host_ip, "principal": np.principal},
        "waypoint": {"name": listing.waypoint.name, "principal": listing.waypoint.principal}
        if listing.waypoint else None,
        "pushProxy": _push_proxy_data(listing.push_proxy),
        "ingress": _ingress_data(listing.ingress) if listing.ingress else None,
        "otherRegistries": list(listing.others),
    })


def _push_proxy_data(pp: PushProxyEntry | None) -> dict[str, Any] | None:
    if pp is None:
        return None
    return {"namespace": pp.namespace, "serviceAccount": pp.service_account, "principal": pp.principal,
            "repositories": list(pp.repositories), "port": pp.port, "role": pp.role, "grant": pp.grant,
            "connect": pp.connect}


def _ingress_data(ing: IngressEntry) -> dict[str, Any]:
    gw = ing.gateway
    return {"host": ing.host, "registry": ing.registry,
            "gateway": {"namespace": gw.namespace, "selector": dict(gw.selector), "serviceAccount": gw.service_account,
                        "principal": gw.principal, "dedicated": gw.dedicated},
            "clients": [_client_data(c) for c in ing.clients]}


def _client_data(c: ClientEntry) -> dict[str, Any]:
    jwt = c.method == "jwt"
    return {"name": c.name, "method": c.method, "principal": None if jwt else c.principal,
            "requestPrincipal": c.request_principal if jwt else None,
            "claims": {k: list(v) for k, v in (c.claims or {}).items()} if jwt else None,
            "repositories": list(c.repositories), "readRepositories": list(c.read_repositories), "delete": c.delete}


def listing_text(listing: Listing) -> str:
    """`policy list`: one line per writer, reader and proxy, then the push proxy and the ingress."""
    np = listing.node_proxy
    lines = [*_header(listing), *_writers(listing)]
    lines.append("readers:")
    for r in listing.readers:
        shown = "every mesh identity" if r.reader == "*" else r.reader
        lines.append(f"  {shown:30} ({r.principal})")
    if listing.scoped:
        lines.append(f"  reads are per registry: each reader and writer reads every repository of "
                     f"{listing.registry.name}; prefixes bound writes only (a cross-repository mount, which policies "
                     "cannot see, needs only a digest). Keep images some of them must not read in another registry.")
    lines.append(f"node proxy: reads only, on {np.host_ip}:{np.port} as {np.principal}" if np.enabled
                 else "node proxy: disabled")
    if listing.waypoint:
        lines.append(f"waypoint: enforces the above for in-mesh clients; the registry pods admit only "
                     f"{listing.waypoint.principal} (mesh: ambient)")
    lines += _push_proxy_text(listing.push_proxy)
    if listing.ingress:
        lines += _ingress_text(listing.ingress)
    return "\n".join(lines)


def _header(listing: Listing) -> list[str]:
    reg = listing.registry
    lines = [f"{listing.source}: trust domain {listing.trust_domain}, namespace {listing.namespace}"]
    if listing.others:
        lines.append(f"registry {reg.name} ({reg.role}{', default' if reg.default else ''}); others: "
                     f"{', '.join(listing.others)} (--registry NAME)")
    return lines


def _writers(listing: Listing) -> list[str]:
    lines = ["writers:" if listing.writers else "writers: none (nobody can push)"]
    proxy = listing.push_proxy.service_account if listing.push_proxy else None
    for w in listing.writers:
        grant = "  DELETE only (retention)" if not w.push else ("  +DELETE" if w.delete else "")
        mark = "  [push proxy]" if w.service_account == proxy else ""
        lines.append(f"  {w.service_account:30} {_scope(w.repositories)}{grant}  ({w.principal}){mark}")
    return lines


def _push_proxy_text(pp: PushProxyEntry | None) -> list[str]:
    if pp is None:
        return ["push proxy: none (to push from a laptop, enable pushProxy: see docs/pushing.md)"]
    return [f"push proxy: {', '.join(pp.repositories)} as {pp.service_account}, for whoever may port-forward "
            f"in namespace {pp.namespace} (Role {pp.role})",
            f"  grant:   {pp.grant}",
            f"  connect: meshreg connect{pp.connect}  (listens on localhost:{pp.port})"]


def _scope(prefixes: tuple[str, ...]) -> str:
    return "every repository" if prefixes == ("*",) else ", ".join(prefixes)


def _ingress_text(ing: IngressEntry) -> list[str]:
    gw = ing.gateway
    lines = [f"ingress {ing.host}: through the gateway {gw.namespace}/{gw.service_account}, which the registry lets "
             "write the clients' prefixes" + ("" if ing.clients else "; no clients, nobody passes")]
    for c in ing.clients:
        who = c.principal or f"{c.request_principal}" + "".join(
            f", {k} in [{', '.join(v)}]" for k, v in (c.claims or {}).items())
        lines.append(f"  {c.name:20} {c.method:4} writes {_scope(c.repositories)}; reads "
                     f"{_scope(c.read_repositories)}{'  +DELETE' if c.delete else ''}  ({who})")
    if ing.mounts_refused:
        lines.append("  cross-repository mounts are refused at the gateway (401; clients upload instead), so no "
                     "client reads past its read prefixes")
    return lines


def check_data(report: CheckReport) -> dict[str, Any]:
    """The `kind: PolicyCheckReport` document (docs/output.md)."""
    return document("PolicyCheckReport", {
        "decision": "ALLOW" if report.allowed else "DENY", "identity": report.identity, "what": list(report.what),
        "requests": [{"method": r.method, "path": r.path, "decision": r.decision.decision, "hop": r.decision.hop,
                      "policy": r.decision.policy, "rule": r.decision.rule, "reason": r.decision.reason}
                     for r in report.requests]})


def check_text(report: CheckReport) -> str:
    """`policy check`: the verdict, then each request with the hop, policy and rule that decided it."""
    lines = [f"{'ALLOW' if report.allowed else 'DENY'}: {report.identity} {' '.join(report.what)}"]
    for r in report.requests:
        d = r.decision
        decided = f"{d.policy} rule {d.rule}" if d.rule is not None else d.policy
        where = ", ".join(part for part in (d.hop, decided) if part) or "default"
        lines.append(f"  {d.decision:5} {r.method:6} {r.path}\n        by {where}: {d.reason}")
    return "\n".join(lines)


def edit_text(report: EditReport) -> str:
    """`policy grant|revoke`: the file, and the writer before and after; "unchanged" (like kubectl apply) when the
    file already said so."""
    if not report.changed:
        return "\n".join([f"{report.path}: {report.identity} unchanged", f"  writer: {_writer(report.after)}",
                          f"  note:   {report.note}"])
    lines = [f"{report.path}: {report.identity}", f"  before: {_writer(report.before)}",
             f"  after:  {_writer(report.after)}"]
    if report.note:
        lines.append(f"  note:   {report.note}")
    return "\n".join(lines)


def _writer(writer: Writer | None) -> str:
    if writer is None:
        return "not a writer"
    scope = "every repository" if not writer.scoped else "repositories " + ", ".join(writer.repositories)
    return f"writes {scope}; DELETE {'granted' if writer.delete else 'not granted'}"
