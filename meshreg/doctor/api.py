"""Check 1: the API server answers, its Kubernetes version, and whether the caller may do what `up` needs.

One SelfSubjectRulesReview per namespace (what `kubectl auth can-i --list` reads) answers most of it in a single
round trip; a SelfSubjectAccessReview per verb answers the rest: cluster-scoped kinds, and what the rules do not grant
where the authorizer says its list is incomplete (a webhook authorizer cannot list its rules). Before `up`, only
delete is asked (for prune): `up` reads what exists and dry-runs every object itself, which proves the rest and
reports each refusal at once."""

from __future__ import annotations

from collections.abc import Sequence

from meshreg.cluster import parallel
from meshreg.cluster import scope as scopes
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.apply import PRUNABLE, served
from meshreg.cluster.client import KINDS, resource_name
from meshreg.config import Config
from meshreg.doctor.access import allows
from meshreg.doctor.facts import Facts, version_tuple
from meshreg.doctor.results import Result, fail, ok, some, warn
from meshreg.errors import ClusterError

CHECK = "api"
MINIMUM = (1, 25)  # Pod Security admission (the namespace label meshreg sets for the node proxy) is GA since 1.25
Target = tuple[str, str, str | None]  # (apiVersion, kind, namespace)
Ask = tuple[str, Target]  # (verb, what)
# What `up` proves itself before it changes anything: its read of what exists (get, list) and its dry run of every
# object (create, patch, each refusal reported at once). Its checks ask only the rest: delete, for prune.
PROVEN_BY_UP = frozenset({"get", "list", "create", "patch"})


def check(facts: Facts) -> list[Result]:
    version = facts.version.get("gitVersion") or "unknown"
    out = [ok(CHECK, f"Kubernetes {version} at {facts.cluster.server}")]
    if version_tuple(version)[:2] < MINIMUM:
        out = [warn(CHECK, f"Kubernetes {version} at {facts.cluster.server} is older than 1.25",
                    "meshreg relies on Pod Security admission labels (1.25+); upgrade the cluster")]
    return out + permissions(facts)


def needed(cfg: Config, manifests: list[Object],
           prunable: Sequence[tuple[str, str]] = PRUNABLE) -> dict[Target, set[str]]:
    """(apiVersion, kind, namespace) -> the verbs `up` and `down` use on it (`prunable`: the kinds prune lists)."""
    out: dict[Target, set[str]] = {}
    for obj in manifests:
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"))
        out.setdefault(key, set()).update({"get", "create", "patch"})
        if obj["kind"] not in ("Namespace", "PersistentVolumeClaim"):
            out[key].add("delete")
    for namespace, kinds in scopes.offline(cfg, manifests, prunable).items():  # prune lists what it may have rendered
        for api_version, kind in kinds:
            out.setdefault((api_version, kind, namespace), set()).update({"list", "delete"})
    return out


def review(cluster: ClusterClient, *, verb: str, api_version: str, kind: str, namespace: str | None) -> bool:
    """May the caller `verb` this kind (in `namespace`)? A SelfSubjectAccessReview answers."""
    plural, namespaced = KINDS[(api_version, kind)]
    attributes = {"verb": verb, "group": api_version.rpartition("/")[0], "resource": plural}
    if namespaced and namespace:
        attributes["namespace"] = namespace
    answer = cluster.create({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                             "spec": {"resourceAttributes": attributes}})
    return bool((answer.get("status") or {}).get("allowed"))


def rules(cluster: ClusterClient, namespace: str) -> tuple[list[Object], bool]:
    """The caller's resource rules in `namespace` (RoleBindings there and ClusterRoleBindings), and whether the
    authorizer listed them all."""
    answer = cluster.create({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                             "spec": {"namespace": namespace}})
    status = answer.get("status") or {}
    return status.get("resourceRules") or [], bool(status.get("incomplete"))


def grants(rules: list[Object], *, verb: str, group: str, resource: str) -> bool:
    """Whether one of `rules` lets the caller `verb` every object of the resource (a rule limited to
    resourceNames does not)."""
    return any(matched and not names for matched, names in (allows(r, verb, group, resource) for r in rules))


def answers(cluster: ClusterClient, asks: list[Ask]) -> list[bool]:
    """Whether each (verb, (apiVersion, kind, namespace)) is allowed, in order."""
    namespaces = sorted({ns for _, (av, kind, ns) in asks if ns and KINDS[(av, kind)][1]})
    reviews = dict(zip(namespaces, parallel.values(lambda ns: rules(cluster, ns), namespaces), strict=True))

    def settle(item: Ask) -> bool:
        verb, (api_version, kind, namespace) = item
        plural, namespaced = KINDS[(api_version, kind)]
        if namespaced and namespace:
            granted, incomplete = reviews[namespace]
            if grants(granted, verb=verb, group=api_version.rpartition("/")[0], resource=plural):
                return True
            if not incomplete:
                return False
        return review(cluster, verb=verb, api_version=api_version, kind=kind, namespace=namespace)
    return parallel.values(settle, asks)


def permissions(facts: Facts) -> list[Result]:
    try:
        prunable = served(facts, PRUNABLE)
        asks = [(verb, key) for key, verbs in sorted(needed(facts.cfg, facts.manifests, prunable).items(), key=str)
                for verb in sorted(verbs) if not (facts.dry_run_follows and verb in PROVEN_BY_UP)]
        allowed = answers(facts.cluster, asks)
    except ClusterError as e:
        return [warn(CHECK, f"could not check permissions: {e}",
                     "`up` will report any permission it lacks as it applies")]
    denied: dict[tuple[str, str | None], list[str]] = {}
    for (verb, (api_version, kind, namespace)), yes in zip(asks, allowed, strict=True):
        if not yes:
            denied.setdefault((resource_name(api_version, kind), namespace), []).append(verb)
    if not denied:
        what = "delete what up prunes" if facts.dry_run_follows else "do what up and down need"
        return [ok(CHECK, f"you may {what} ({len(asks)} permissions checked)")]
    text = some(f"{', '.join(verbs)} {resource}" + (f" in {ns}" if ns else "")
                for (resource, ns), verbs in sorted(denied.items(), key=str))
    return [fail(CHECK, f"you may not: {text}",
                 "ask a cluster admin for these permissions (kubectl auth can-i VERB RESOURCE -n NAMESPACE "
                 "shows each), or use a context that has them")]
