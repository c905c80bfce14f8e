"""Checks before `up` writes anything: the server answers, Istio's CRDs are served, sidecar injection is set up."""

from __future__ import annotations

from meshreg.cluster import ingress
from meshreg.errors import ClusterError

ISTIO_RESOURCES = {"security.istio.io/v1": ("authorizationpolicies", "peerauthentications"),
                   "networking.istio.io/v1": ("gateways", "virtualservices")}
INJECTOR_NAMES = ("istio-sidecar-injector", "istio-revision-tag-")


def preflight(*, cluster, manifests) -> list[str]:
    """Checks before any write: the server answers, Istio's CRDs exist, sidecar injection is set up; warnings back."""
    cluster.version()
    missing = [f"{r}.{gv.partition('/')[0]}" for gv, names in ISTIO_RESOURCES.items()
               for r in names if r not in cluster.served(gv)]
    if missing:
        raise ClusterError(f"Istio is not installed on {cluster.server} (missing CRDs: {', '.join(missing)}); "
                           "install it first, e.g. `istioctl install`")
    namespaces = [o for o in manifests if o["kind"] == "Namespace"]
    warnings = ingress.preflight(cluster=cluster, manifests=manifests)
    for ns in namespaces:
        try:
            hooks = cluster.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        except ClusterError as e:  # a namespace-scoped user may not read webhooks; say so and go on
            warnings.append(f"could not check sidecar injection ({e})")
            continue
        labels = ns["metadata"].get("labels") or {}
        if not any(matches(w.get("namespaceSelector"), labels) for h in hooks if _is_injector(h)
                   for w in h.get("webhooks") or []):
            raise ClusterError(f"no Istio sidecar injector matches namespace {ns['metadata']['name']} "
                               f"(labels {_labels_text(labels)}); install Istio with that revision "
                               "(istioctl install [--revision REV]) or set spec.istioRevision")
    return warnings


def _is_injector(hook: dict) -> bool:
    return hook.get("metadata", {}).get("name", "").startswith(INJECTOR_NAMES)


def _labels_text(labels: dict) -> str:
    picked = {k: v for k, v in labels.items() if k.startswith(("istio", "istio.io"))}
    return ", ".join(f"{k}={v}" for k, v in sorted(picked.items())) or "none for injection"


def matches(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); an empty selector matches all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True
