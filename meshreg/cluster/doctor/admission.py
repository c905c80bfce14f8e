"""Check 7: a server-side dry run (`dryRun=All`) of the whole render, so admission (Pod Security, validating
webhooks such as Gatekeeper or Kyverno, ValidatingAdmissionPolicies) refuses or warns now, against the object it
names, rather than halfway through `up`."""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.cluster.apply import foreign, ordered, read_live
from meshreg.cluster.client import ConflictError
from meshreg.cluster.doctor import fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "admission"


@dataclass(frozen=True)
class Finding:
    """What the server said about one object in a dry run: a refusal (error) or a warning."""

    obj: str
    kind: str  # refused | warning | conflict
    message: str


def _name(obj: dict) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']} {ns + '/' if ns else ''}{obj['metadata']['name']}"


def dry_run(*, cluster, manifests) -> tuple[list[Finding], list[str]]:
    """Dry-run apply every object in order: (what the server refused, warned about or found owned by another field
    manager, objects not checked because their namespace does not exist yet)."""
    findings, unchecked = [], []
    namespaces = {o["metadata"]["name"] for o in manifests if o["kind"] == "Namespace"}
    missing = {ns for ns in namespaces if cluster.get("v1", "Namespace", ns) is None}
    for obj in ordered(manifests):
        if obj["metadata"].get("namespace") in missing:
            unchecked.append(_name(obj))
            continue
        warnings: list[str] = []
        try:
            try:
                cluster.apply(obj, dry_run=True, warnings=warnings)
            except ConflictError as e:  # not admission: up stops there unless --force-conflicts; ask again forced
                findings.append(Finding(_name(obj), "conflict", str(e)))
                cluster.apply(obj, dry_run=True, force=True, warnings=warnings)
        except ClusterError as e:
            findings.append(Finding(_name(obj), "refused", str(e)))
        findings += [Finding(_name(obj), "warning", w) for w in warnings]
    return findings, unchecked


FIXES = {
    "refused": "change what admission objects to (or the policy that refuses it), then run doctor again",
    "warning": "pods of this workload may be refused when they are created; fix the cause the warning names",
    "conflict": "another field manager changed it: up stops there unless --force-conflicts takes the fields back",
}


def _result(f: Finding):
    make = fail if f.kind == "refused" else warn
    text = f.message if f.message.startswith(f"{f.kind}:") else f"{f.kind}: {f.message}"
    return make(CHECK, f"{f.obj}: {text}", FIXES[f.kind])


def check(facts) -> list:
    manifests = facts.manifests
    findings, unchecked = dry_run(cluster=facts.cluster, manifests=manifests)
    out = [_result(f) for f in findings]
    strangers = foreign(manifests, read_live(manifests, facts.cluster))
    if strangers:
        out.append(warn(CHECK, f"not managed by meshreg: {', '.join(strangers)}",
                        "up leaves them alone and stops; rerun up with --adopt to take them over"))
    checked = len(manifests) - len(unchecked)
    if unchecked:
        out.append(warn(CHECK, f"{len(unchecked)} of {len(manifests)} objects not dry-run: namespace "
                               f"{facts.cfg.namespace} does not exist yet, and a server-side dry run needs it",
                        "up creates the namespace first; run doctor again after up to dry-run them too"))
    if not findings:
        out.insert(0, ok(CHECK, f"server-side dry run of {checked} objects: no refusal, no warning"))
    return out
