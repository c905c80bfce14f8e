"""The lab's configs, identities, and raw requests each with what Istio's semantics say must happen."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from support.lab.clients import mtls_client, raw_request

TRUST_DOMAIN = "lab.example"
WRITER = "builds/kaniko"  # unscoped, may delete
SCOPED = "team-a/builder"  # team-a/ only, may not delete
NON_WRITER = "apps/web"

WITH_DELETE = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: lab}}
spec:
  namespace: registry
  trustDomain: {TRUST_DOMAIN}
  registry: {{deleteEnabled: true}}
  writers:
    - serviceAccount: {WRITER}
      delete: true
    - serviceAccount: {SCOPED}
      repositories: [team-a/]
"""

WITHOUT_DELETE = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: nodelete}}
spec:
  namespace: registry
  trustDomain: {TRUST_DOMAIN}
  registry: {{deleteEnabled: false}}
  writers:
    - serviceAccount: {WRITER}
"""

# The same lab in Istio's ambient mode: a waypoint and ztunnel instead of the registry's sidecar.
AMBIENT_WITH_DELETE = WITH_DELETE + "  mesh: ambient\n"

NODE_PROXY = "node-proxy"
UPLOADS = "blobs/uploads/"
ZERO = "sha256:" + "0" * 64
_NS, _SA = WRITER.split("/")
# What a sidecar would have set for a request from the unscoped writer.
FORGED_XFCC = {"x-forwarded-client-cert": f"By=spiffe://{TRUST_DOMAIN}/ns/registry/sa/registry;"
                                          f"URI=spiffe://{TRUST_DOMAIN}/ns/{_NS}/sa/{_SA}"}


@dataclass(frozen=True)
class Case:
    """`denied`: True = Envoy must answer 403, False = must not, None = either (then only `outside` is checked).

    `outside`: a repository that must still not exist afterwards (the write must not land there)."""

    name: str
    identity: str  # NS/SA through the sidecar with that certificate, or "node-proxy" through the node proxy
    method: str
    path: str
    denied: bool | None
    outside: str | None = None
    headers: dict = field(default_factory=dict)


def _scoped(name, path, denied=True, outside="team-b/app", method="POST"):
    return Case(f"scoped writer {name}", SCOPED, method, path, denied, outside)


CASES = [
    _scoped("opens an upload in its own prefix", f"/v2/team-a/app/{UPLOADS}", denied=False, outside=None),
    _scoped("opens an upload in another prefix", f"/v2/team-b/app/{UPLOADS}"),
    _scoped("opens an upload in a longer prefix", f"/v2/team-ab/app/{UPLOADS}", outside="team-ab/app"),
    _scoped("climbs out with ..", f"/v2/team-a/../team-b/app/{UPLOADS}"),
    _scoped("climbs out with %2e%2e", f"/v2/team-a/%2e%2e/team-b/app/{UPLOADS}"),
    _scoped("climbs out with %2E%2E", f"/v2/team-a/%2E%2E/team-b/app/{UPLOADS}"),
    _scoped("climbs out with ..;", f"/v2/team-a/..;/team-b/app/{UPLOADS}", denied=None),
    _scoped("climbs out with a backslash", f"/v2/team-a/..\\team-b/app/{UPLOADS}"),
    _scoped("climbs out with %5C", f"/v2/team-a/..%5Cteam-b/app/{UPLOADS}", denied=None),
    _scoped("hides a slash as %2F", f"/v2/team-b%2Fapp/{UPLOADS}"),
    _scoped("hides a slash as %2f", f"/v2/team-b%2fapp/{UPLOADS}"),
    _scoped("climbs out with ..%2F after its prefix", f"/v2/team-a/..%2Fteam-b%2Fapp/{UPLOADS}", denied=None),
    _scoped("doubles a slash", f"/v2//team-b/app/{UPLOADS}"),
    _scoped("writes in upper case", f"/v2/TEAM-B/app/{UPLOADS}", outside="TEAM-B/app"),
    _scoped("writes to /V2", f"/V2/team-b/app/{UPLOADS}"),
    _scoped("puts its prefix in the query", f"/v2/team-b/app/{UPLOADS}?x=/v2/team-a/app"),
    _scoped("mounts into another prefix", f"/v2/team-b/app/{UPLOADS}?mount={ZERO}&from=team-a/app"),
    _scoped("puts a manifest in another prefix", "/v2/team-b/app/manifests/latest", method="PUT"),
    _scoped("deletes in its own prefix without the grant", f"/v2/team-a/app/manifests/{ZERO}", method="DELETE",
            outside=None),
    Case("scoped writer claiming to be the unscoped writer in XFCC", SCOPED, "POST", f"/v2/team-b/app/{UPLOADS}",
         True, "team-b/app", FORGED_XFCC),
    Case("non-writer reads", NON_WRITER, "GET", "/v2/", False),
    Case("non-writer opens an upload", NON_WRITER, "POST", f"/v2/open/app/{UPLOADS}", True, "open/app"),
    Case("non-writer opens an upload in a writer's prefix", NON_WRITER, "POST", f"/v2/team-a/web/{UPLOADS}", True,
         "team-a/web"),
    Case("non-writer puts a manifest", NON_WRITER, "PUT", "/v2/open/app/manifests/latest", True, "open/app"),
    Case("non-writer patches an upload", NON_WRITER, "PATCH", f"/v2/open/app/{UPLOADS}0000", True, "open/app"),
    Case("non-writer deletes", NON_WRITER, "DELETE", f"/v2/open/app/manifests/{ZERO}", True),
    Case("non-writer climbs with %2e%2e", NON_WRITER, "POST", f"/v2/x/%2e%2e/open/app/{UPLOADS}", True, "open/app"),
    Case("non-writer hides a slash as %2F", NON_WRITER, "POST", f"/v2/open%2Fapp/{UPLOADS}", True, "open/app"),
    Case("non-writer claiming to be a writer in XFCC", NON_WRITER, "POST", f"/v2/open/app/{UPLOADS}", True,
         "open/app", FORGED_XFCC),
    Case("node proxy serves reads", NODE_PROXY, "GET", "/v2/", False),
    Case("node proxy refuses an upload", NODE_PROXY, "POST", f"/v2/open/app/{UPLOADS}", True, "open/app"),
    Case("node proxy refuses a manifest put", NODE_PROXY, "PUT", "/v2/open/app/manifests/latest", True, "open/app"),
    Case("node proxy refuses a delete", NODE_PROXY, "DELETE", f"/v2/open/app/manifests/{ZERO}", True),
    Case("node proxy refuses an upload hidden behind %2F", NODE_PROXY, "POST", f"/v2/open%2Fapp/{UPLOADS}", True,
         "open/app"),
    Case("node proxy ignores a writer's XFCC", NODE_PROXY, "POST", f"/v2/open/app/{UPLOADS}", True, "open/app",
         FORGED_XFCC),
]


def send(lab, case: Case) -> httpx.Response:
    """Send `case` as written, through the node proxy or with the case's certificate to where mesh clients send
    (the sidecar, or in ambient mode the waypoint)."""
    if case.identity == NODE_PROXY:
        client = httpx.Client(base_url=f"http://{lab.node_proxy}", timeout=30.0)
    else:
        client = mtls_client(lab.entry, lab.identity(case.identity), ca=lab.ca.ca_file)
    with client:
        return raw_request(client, case.method, case.path, headers=case.headers)


def envoy_decision(lab, case: Case) -> str:
    """DENY when Envoy's RBAC answered 403, else ALLOW (whatever the registry then answered)."""
    return "DENY" if send(lab, case).status_code == 403 else "ALLOW"
