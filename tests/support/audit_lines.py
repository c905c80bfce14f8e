"""Audit lines shaped exactly as Envoy 1.40 wrote them with meshreg's format (every key, keys sorted, null for a
missing value, numbers as numbers), for tests that need records without running a proxy."""

from __future__ import annotations

import json

from meshreg.audit import FIELDS, MARKER, VERSION

DIGEST = "sha256:" + "2c" * 32
BASE = {
    "authority": "registry.meshreg.svc.cluster.local:5000", "bytes_received": 529, "code": 201,
    "details": "via_upstream", "digest": DIGEST, "duration_ms": 19, "flags": "-", "jwt_issuer": None,
    "jwt_subject": None, "location": f"/v2/builds/app/manifests/{DIGEST}", MARKER: VERSION, "method": "PUT",
    "namespace": "meshreg", "path": "/v2/builds/app/manifests/v1", "peer": "spiffe://cluster.local/ns/builds/sa/kaniko",
    "peer_principal": None, "pod": "registry-7d9f-abcde", "request_id": "09833f7e-9f2d-42fc-8961-6c1f54d0a7b1",
    "source_address": "10.244.0.12:43210", "client_address": "10.244.0.12:43210", "time": "2026-12-06T06:33:01.804Z",
    "user_agent": "containers/5.24.1 (github.com/containers/image)",
}
assert set(BASE) == set(FIELDS)


def line(**changes: object) -> str:
    """One audit line: BASE with `changes` (a value of None writes null, as Envoy does)."""
    return json.dumps(dict(sorted({**BASE, **changes}.items())), separators=(",", ":"))


PUSH_LINE = line()
REFUSED_LINE = line(method="POST", path="/v2/team-b%2Fapp/blobs/uploads/", code=403, digest=None, location=None,
                    details="rbac_access_denied_matched_policy[ns[meshreg]-policy[registry-deny-writes]-rule[1]]",
                    peer="spiffe://cluster.local/ns/team-a/sa/builder", bytes_received=0, duration_ms=0)
