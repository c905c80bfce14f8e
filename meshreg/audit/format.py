"""The audit record's format: one JSON line per write or refusal, written by the Envoy that enforced the policy.

The format lives in the mesh config as an extension provider (Istio's `envoyFileAccessLog` with `logFormat.labels`),
because Istio takes a custom access-log format only from there; the Telemetry objects meshreg renders name that
provider and select which requests it logs with a CEL filter. Every value is an Envoy command operator that the
proxy fills from what it verified or did, never from a header the client chose:

- the path is `%REQ(:PATH)%` after Envoy's normalization, which is what the proxy forwarded (not
  `X-Envoy-Original-Path`, which a client can send);
- the peer is the TLS peer certificate's URI SAN (`%DOWNSTREAM_PEER_URI_SAN%`: sidecars and gateways terminate the
  client's TLS) or Istio's verified peer principal kept in filter state (`io.istio.peer_principal`: waypoints, where
  the client's HBONE tunnel is terminated on another listener);
- a token's issuer and subject come from the payload Envoy's jwt_authn filter verified (Istio 1.21 and later keep
  it under `payload`);
- the digest is the registry's `Docker-Content-Digest` response header;
- the source address is the connection's peer (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`), which a client cannot set;
  `client_address` is the address Envoy resolved for the client, which follows X-Forwarded-For as far as the proxy
  is set to trust it (a sidecar takes the last address a client wrote there).

Version `v1` may gain keys; it never loses or renames one (that would be `v2`).
"""

from __future__ import annotations

from typing import Final

VERSION: Final = "v1"
MARKER: Final = "meshreg_audit"  # the key a log pipeline selects audit lines by; its value is the version

# key -> Envoy command operator (Envoy's JSON format keeps numbers as numbers and writes null for a missing value)
FIELDS: Final[dict[str, str]] = {
    MARKER: VERSION,
    "time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "code": "%RESPONSE_CODE%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "flags": "%RESPONSE_FLAGS%",
    "digest": "%RESP(DOCKER-CONTENT-DIGEST)%",
    "location": "%RESP(LOCATION)%",
    "peer": "%DOWNSTREAM_PEER_URI_SAN%",
    "peer_principal": "%FILTER_STATE(io.istio.peer_principal:PLAIN)%",
    "jwt_issuer": "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:iss)%",
    "jwt_subject": "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:sub)%",
    "source_address": "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%",
    "client_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "bytes_received": "%BYTES_RECEIVED%",
    "duration_ms": "%DURATION%",
    "pod": "%ENVIRONMENT(POD_NAME)%",
    "namespace": "%ENVIRONMENT(POD_NAMESPACE)%",
}

STDOUT: Final = "/dev/stdout"  # so the records are the proxy container's log: `kubectl logs`, and any log shipper


def provider(name: str) -> dict[str, object]:
    """The mesh config's extensionProviders entry that writes audit records (what `meshreg audit --mesh-config`
    prints and `meshreg doctor` looks for)."""
    return {"name": name, "envoyFileAccessLog": {"path": STDOUT, "logFormat": {"labels": dict(FIELDS)}}}
