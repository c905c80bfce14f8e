"""Check 1: the API server answers, its Kubernetes version, and whether the caller may do what `up` needs
(one SelfSubjectAccessReview per resource, namespace and verb)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from meshreg.cluster.apply import PRUNABLE
from meshreg.cluster.client import KINDS, resource_name
from meshreg.cluster.doctor import fail, ok, some, warn
from meshreg.cluster.doctor.facts import version_tuple
from meshreg.errors import ClusterError

CHECK = "api"
MINIMUM = (1, 25)  # Pod Security admission (the namespace label meshreg sets for the node proxy) is GA since 1.25
HOSTING_NAMESPACE = "kube-public"


def check(facts) -> list:
    version = facts.version.get("gitVersion") or "unknown"
    out = [ok(CHECK, f"Kubernetes {version} at {facts.cluster.server}")]
    if version_tuple(version)[:2] < MINIMUM:
        out = [warn(CHECK, f"Kubernetes {version} at {facts.cluster.server} is older than 1.25",
                    "meshreg relies on Pod Security admission labels (1.25+); upgrade the cluster")]
    return out + permissions(facts)


def needed(cfg, manifests) -> dict:
    """(apiVersion, kind, namespace) -> the verbs `up` and `down` use on it."""
    out: dict = {}
    for obj in manifests:
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"))
        out.setdefault(key, set()).update({"get", "create", "patch"})
        if obj["kind"] not in ("Namespace", "PersistentVolumeClaim"):
            out[key].add("delete")
    for namespace in (cfg.namespace, HOSTING_NAMESPACE):  # prune lists every kind it may have rendered
        for api_version, kind in PRUNABLE:
            out.setdefault((api_version, kind, namespace), set()).update({"list", "delete"})
    return out


def review(cluster, *, verb: str, api_version: str, kind: str, namespace: str | None) -> bool:
    """May the caller `verb` this kind (in `namespace`)? A SelfSubjectAccessReview answers."""
    plural, namespaced = KINDS[(api_version, kind)]
    attributes = {"verb": verb, "group": api_version.rpartition("/")[0], "resource": plural}
    if namespaced and namespace:
        attributes["namespace"] = namespace
    answer = cluster.create({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                             "spec": {"resourceAttributes": attributes}})
    return bool((answer.get("status") or {}).get("allowed"))


def permissions(facts) -> list:
    asks = [(verb, key) for key, verbs in sorted(needed(facts.cfg, facts.manifests).items(), key=str)
            for verb in sorted(verbs)]

    def ask(item):
        verb, (api_version, kind, namespace) = item
        return review(facts.cluster, verb=verb, api_version=api_version, kind=kind, namespace=namespace)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, asks))
    except ClusterError as e:
        return [warn(CHECK, f"could not check permissions: {e}",
                     "`up` will report any permission it lacks as it applies")]
    denied: dict = {}
    for (verb, (api_version, kind, namespace)), allowed in zip(asks, answers):
        if not allowed:
            denied.setdefault((resource_name(api_version, kind), namespace), []).append(verb)
    if not denied:
        return [ok(CHECK, f"you may do what up and down need ({len(asks)} access reviews allowed)")]
    text = some(f"{', '.join(verbs)} {resource}" + (f" in {ns}" if ns else "")
                for (resource, ns), verbs in sorted(denied.items(), key=str))
    return [fail(CHECK, f"you may not: {text}",
                 "ask a cluster admin for these permissions (kubectl auth can-i VERB RESOURCE -n NAMESPACE "
                 "shows each), or use a context that has them")]
