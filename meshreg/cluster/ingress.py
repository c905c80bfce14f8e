"""The ingress on a cluster: checks before `up` writes anything (the gateway's namespace and pods, the server
certificate's Secret, the RequestAuthentication CRD), and where to prune its objects: the gateway's namespace, the one
configured and the one the previous `up` recorded on meshreg's Namespace (so removing spec.ingress prunes it too)."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.errors import ClusterError
from meshreg.render.ingress import NAMESPACE_ANNOTATION
from meshreg.render.labels import selector as selector_text

# In apply order; pruning goes the other way (the route first, the CA Secret last).
KINDS = [("v1", "Secret"), ("security.istio.io/v1", "RequestAuthentication"),
         ("security.istio.io/v1", "AuthorizationPolicy"), ("networking.istio.io/v1", "Gateway"),
         ("networking.istio.io/v1", "VirtualService"), ("telemetry.istio.io/v1", "Telemetry")]


def recorded_namespace(cluster: ClusterClient, namespace: str) -> list[str]:
    """The gateway namespace the previous `up` recorded on meshreg's live Namespace (read before applying)."""
    live = cluster.get("v1", "Namespace", namespace)
    value = ((live or {}).get("metadata", {}).get("annotations") or {}).get(NAMESPACE_ANNOTATION)
    return [value] if value else []


def preflight(*, cluster: ClusterClient, manifests: list[Object]) -> list[str]:
    """Errors (ClusterError) where `up` would fail half-way; warnings where the ingress would not work yet."""
    gateways = [o for o in manifests if o["kind"] == "Gateway"
                and (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "ingress"]
    if not gateways:
        return []
    if any(o["kind"] == "RequestAuthentication" for o in manifests) and \
            "requestauthentications" not in cluster.served("security.istio.io/v1"):
        raise ClusterError(f"{cluster.server} does not serve RequestAuthentication (security.istio.io/v1), which "
                           "spec.ingress needs for its jwt clients; install Istio 1.22 or later")
    warnings = []
    for gateway in gateways:
        warnings += _check_gateway(cluster, gateway)
    return warnings


def _check_gateway(cluster: ClusterClient, gateway: Object) -> list[str]:
    ns = gateway["metadata"]["namespace"]
    selector = gateway["spec"]["selector"]
    labels = selector_text(selector)
    if _get(cluster, "Namespace", ns) is None:
        raise ClusterError(f"namespace {ns} does not exist (spec.ingress.gateway.namespace: the namespace of the "
                           "ingress gateway's pods); install the gateway there, or name its namespace")
    out = []
    try:
        if not cluster.list("v1", "Pod", namespace=ns, label_selector=labels):
            out.append(f"no pods labelled {labels} in {ns}: nothing serves the ingress until the gateway runs there "
                       "(spec.ingress.gateway.selector)")
    except ClusterError as e:
        out.append(f"could not look for the gateway's pods ({e})")
    server = gateway["spec"]["servers"][0]
    if _get(cluster, "Secret", server["tls"]["credentialName"], namespace=ns) is None:
        out.append(f"Secret {ns}/{server['tls']['credentialName']} (spec.ingress.credentialName: the server "
                   f"certificate, keys tls.crt and tls.key) does not exist yet: the gateway serves no TLS for "
                   f"{server['hosts'][0].removeprefix('./')} until it does (e.g. from a cert-manager Certificate)")
    return out


def _get(cluster: ClusterClient, kind: str, name: str, *, namespace: str | None = None) -> Object | bool | None:
    """The object, None when absent, or True when the user may not read it (nothing to say then)."""
    try:
        return cluster.get("v1", kind, name, namespace=namespace)
    except ClusterError:
        return True
