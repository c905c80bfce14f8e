"""Check 7: a server-side dry run (`dryRun=All`) of the whole render, the same one `up` sends before it changes
anything (meshreg.cluster.apply.plan), so admission (Pod Security, validating webhooks such as Gatekeeper or Kyverno,
ValidatingAdmissionPolicies, quota) refuses or warns now, against the object it names, rather than during `up`."""

from __future__ import annotations

from meshreg.cluster import apply as applying
from meshreg.cluster.errors import ConflictError
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, fail, ok, warn

CHECK = "admission"
FIXES = {
    "refused": "change what admission objects to (or the policy that refuses it), then run doctor again",
    "warning": "pods of this workload may be refused when they are created; fix the cause the warning names",
    "conflict": "another field manager changed it: up stops there unless --force-conflicts takes the fields back",
    "owner": "up leaves them alone and stops; --adopt takes over objects meshreg does not manage, never another "
             "instance's (give this one its own namespace, or spec.localRegistryHosting.publish: false)",
}


def check(facts: Facts) -> list[Result]:
    cluster, manifests = facts.cluster, facts.manifests
    live = facts.live()
    out: list[Result] = []
    try:
        applying.check_ownership(applying.ordered(manifests), live, adopt=False)
    except applying.NotOwned as e:
        out.append(warn(CHECK, str(e).removesuffix("; nothing was applied"), FIXES["owner"]))
    seen = len(cluster.warnings)
    planned = applying.plan(manifests=manifests, cluster=cluster, live=live)
    for refused in planned.refusals:
        conflict = isinstance(refused.error, ConflictError)
        out.append((warn if conflict else fail)(CHECK, str(refused), FIXES["conflict" if conflict else "refused"]))
    out += [warn(CHECK, _warning(w), FIXES["warning"]) for w in dict.fromkeys(cluster.warnings[seen:])]
    if planned.unchecked:
        out.append(warn(CHECK, f"{len(planned.unchecked)} of {len(manifests)} objects not dry-run: namespace "
                               f"{facts.cfg.namespace} does not exist yet, and a server-side dry run needs it",
                        "up creates the namespace first and checks them before it changes anything else; run "
                        "doctor again after up to dry-run them too"))
    if not planned.refusals and len(cluster.warnings) == seen:
        checked = len(manifests) - len(planned.unchecked)
        out.insert(0, ok(CHECK, f"server-side dry run of {checked} objects: no refusal, no warning"))
    return out


def _warning(text: str) -> str:
    """`Kind ns/name: warning: text` from the client's `Kind ns/name: text`."""
    subject, sep, rest = text.partition(": ")
    return f"{subject}: warning: {rest}" if sep else f"warning: {text}"
