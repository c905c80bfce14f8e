"""The push-proxy lab's config, and raw requests through the push proxy with what Istio's semantics say."""

from __future__ import annotations

import httpx

from support.e2e_cases import FORGED_XFCC, UPLOADS, WITH_DELETE, ZERO, Case
from support.e2e_cases import send as send_direct
from support.lab.clients import raw_request

PUSH_PROXY = "push-proxy"  # `policy check --as push-proxy`: through the push proxy, as `meshreg connect` sends
SCOPE = "dev/"
WITH_PUSH_PROXY = WITH_DELETE + f"  pushProxy: {{enabled: true, repositories: [{SCOPE}]}}\n"


def _case(name, method, path, denied, outside=None, headers=None):
    return Case(f"push proxy {name}", PUSH_PROXY, method, path, denied, outside, headers or {})


CASES = [
    _case("opens an upload in its scope", "POST", f"/v2/dev/app/{UPLOADS}", False),
    _case("reads the API root", "GET", "/v2/", False),
    _case("reads outside its scope", "GET", "/v2/team-a/app/tags/list", False),
    _case("opens an upload in a writer's prefix", "POST", f"/v2/team-a/app/{UPLOADS}", True, "team-a/app"),
    _case("opens an upload outside any prefix", "POST", f"/v2/open/app/{UPLOADS}", True, "open/app"),
    _case("opens an upload in a longer prefix", "POST", f"/v2/devx/app/{UPLOADS}", True, "devx/app"),
    _case("climbs out with ..", "POST", f"/v2/dev/../open/app/{UPLOADS}", True, "open/app"),
    _case("climbs out with %2e%2e", "POST", f"/v2/dev/%2e%2e/open/app/{UPLOADS}", True, "open/app"),
    _case("climbs out with ..%2F after its prefix", "POST", f"/v2/dev/..%2Fopen%2Fapp/{UPLOADS}", None, "open/app"),
    _case("hides a slash as %2F", "POST", f"/v2/open%2Fapp/{UPLOADS}", True, "open/app"),
    _case("mounts into another prefix", "POST", f"/v2/open/app/{UPLOADS}?mount={ZERO}&from=dev/app", True,
          "open/app"),
    _case("puts a manifest outside its scope", "PUT", "/v2/open/app/manifests/latest", True, "open/app"),
    _case("deletes inside its scope", "DELETE", f"/v2/dev/app/manifests/{ZERO}", True),
    _case("sends an unknown method", "PROPFIND", "/v2/dev/app/", True),
    _case("asks for a path outside the registry API", "GET", "/debug/vars", True),
    _case("passes on a writer's XFCC", "POST", f"/v2/open/app/{UPLOADS}", True, "open/app", FORGED_XFCC),
]


def send(lab, case: Case) -> httpx.Response:
    """Through the push proxy in plain HTTP, as a port-forward delivers it; other identities as e2e_cases sends."""
    if case.identity != PUSH_PROXY:
        return send_direct(lab, case)
    with httpx.Client(base_url=f"http://{lab.push_proxy}", timeout=30.0) as client:
        return raw_request(client, case.method, case.path, headers=case.headers)
