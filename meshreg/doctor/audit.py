"""Check: the audit trail (spec.audit) can be written: the mesh config defines the extension provider the Telemetry
objects name, with meshreg's format, to stdout; and who an ingress on a shared gateway leaves unrecorded.

Never a FAIL: audit records are evidence, not enforcement; `up` prints these lines as warnings before it applies."""

from __future__ import annotations

from meshreg.audit import meshconfig
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, ok, warn
from meshreg.render import audit as rendering

CHECK = "audit"


def check(facts: Facts) -> list[Result]:
    cfg = facts.cfg
    if not cfg.audit.enabled:
        return [ok(CHECK, "audit records are off (spec.audit.enabled: false)")]
    where, mesh = facts.mesh_config()
    found = meshconfig.problems(mesh, cfg.audit.provider)
    if found:
        out = [warn(CHECK, f"{where}: {'; '.join(found)}: writes and refusals are not recorded", meshconfig.FIX)]
    else:
        out = [ok(CHECK, f"{where} defines extension provider {cfg.audit.provider} with meshreg's audit format")]
    if cfg.ingress and not rendering.records_ingress(cfg):
        out.append(warn(CHECK, f"the ingress gateway ({cfg.ingress.gateway.namespace}) is shared, so it keeps no "
                               "audit record: the registry's records name the gateway, not the client",
                        "serve the ingress from a gateway of its own (spec.ingress.gateway.dedicated: true); "
                        "docs/audit.md"))
    return out
