"""Envoy bootstrap for the lab: the registry's sidecar (STRICT mTLS, RBAC) and the node proxy (HTTP in, mTLS out).

Both HTTP connection managers use Istio's default ("BASE") path normalization: RFC 3986 normalization on,
slashes not merged, escaped slashes left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .pki import Identity

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


@dataclass(frozen=True)
class Tuning:
    """What meshreg could control between node proxy and sidecar (the benchmark varies it)."""

    upstream_h2: bool = False  # Istio: h2UpgradePolicy UPGRADE / appProtocol http2
    buffer_bytes: int | None = None  # listener/cluster per_connection_buffer_limit_bytes (Envoy default 1 MiB)
    h2_window_bytes: int | None = None  # initial stream/connection window when h2 is used
    concurrency: int | None = None  # Envoy worker threads (Istio: proxy concurrency, from the CPU limit)


def _address(port: int, address: str = "127.0.0.1") -> dict:
    return {"socket_address": {"address": address, "port_value": port}}


def _cert(ident: Identity) -> dict:
    return {"certificate_chain": {"filename": str(ident.cert)}, "private_key": {"filename": str(ident.key)}}


# How istiod sets X-Forwarded-Client-Cert (Istio 1.14 and 1.30 alike): a sidecar's inbound listener appends what it
# saw on the connection to the header it received (APPEND_FORWARD, subject/URI/DNS); a gateway replaces the header with
# it (SANITIZE_SET, subject/certificate/URI/DNS; the mesh config's gatewayTopology.forwardClientCertDetails may change
# that). Seen in a real sidecar's and gateway's config dump.
SIDECAR_XFCC = {"forward_client_cert_details": "APPEND_FORWARD",
                "set_current_client_cert_details": {"subject": True, "uri": True, "dns": True}}
GATEWAY_XFCC = {"forward_client_cert_details": "SANITIZE_SET",
                "set_current_client_cert_details": {"subject": True, "cert": True, "uri": True, "dns": True}}


def _hcm(name: str, *, cluster: str, route_timeout: str, filters: list[dict], domains=("*",),
         access_log: list[dict] | None = None, xfcc: dict = GATEWAY_XFCC) -> dict:
    """An HTTP connection manager as Istio configures one; `access_log`: what the Telemetry API gives it
    (lab/telemetry.py); `xfcc`: how it treats X-Forwarded-Client-Cert."""
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        **({"access_log": access_log} if access_log else {}),
        "@type": HCM, "stat_prefix": name, "codec_type": "AUTO",
        "normalize_path": True, "merge_slashes": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        **xfcc,
        "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": list(domains), "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": route_timeout}}]}]},
        "http_filters": [*filters, {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}


def sidecar_listener(*, port: int, server: Identity, trust_domain: str, rbac: list[dict], tuning: Tuning,
                     name: str = "sidecar", cluster: str = "registry", access_log: list[dict] | None = None) -> dict:
    listener = {"name": name, "address": _address(port), "filter_chains": [{
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": downstream_tls(server,
                                                                                                    trust_domain)},
        "filters": [_hcm(name, cluster=cluster, route_timeout="0s", filters=rbac, access_log=access_log,
                         xfcc=SIDECAR_XFCC)]}]}
    if tuning.buffer_bytes:
        listener["per_connection_buffer_limit_bytes"] = tuning.buffer_bytes
    return listener


def downstream_tls(server: Identity, trust_domain: str) -> dict:
    """STRICT mTLS as a mesh proxy accepts it: a client certificate from the mesh CA and trust domain."""
    return {"@type": DOWNSTREAM_TLS, "require_client_certificate": True, "common_tls_context": {
        "tls_certificates": [_cert(server)], "alpn_protocols": ["h2", "http/1.1"],
        # Istio's trust-domain validation: peers from another trust domain fail the handshake.
        "validation_context": {"trusted_ca": {"filename": str(server.ca)}, "match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"prefix": f"spiffe://{trust_domain}/"}}]}}}


def node_proxy_listener(*, port: int, rbac: list[dict], route_timeout: str, tuning: Tuning,
                        cluster: str = "sidecar") -> dict:
    return gateway_listener("node-proxy", port=port, cluster=cluster, rbac=rbac, route_timeout=route_timeout,
                            tuning=tuning)


def gateway_listener(name: str, *, port: int, cluster: str, rbac: list[dict], route_timeout: str, tuning: Tuning,
                     address: str = "127.0.0.1", access_log: list[dict] | None = None) -> dict:
    """A gateway's plain-HTTP listener (node proxy, push proxy) with its RBAC, routing to `cluster`."""
    listener = {"name": name, "address": _address(port, address), "filter_chains": [{
        "filters": [_hcm(name, cluster=cluster, route_timeout=route_timeout, filters=rbac,
                         access_log=access_log)]}]}
    if tuning.buffer_bytes:
        listener["per_connection_buffer_limit_bytes"] = tuning.buffer_bytes
    return listener


def plain_cluster(name: str, port: int) -> dict:
    """One loopback endpoint and nothing else: for a TCP proxy, or as the base of an HTTP or TLS cluster."""
    return {"name": name, "type": "STATIC", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address(port)}}]}]}}


def _cluster(name: str, port: int, tuning: Tuning, *, h2: bool) -> dict:
    cluster = plain_cluster(name, port)
    protocol: dict = {"http_protocol_options": {}}
    if h2:
        protocol = {"http2_protocol_options": {}}
        if tuning.h2_window_bytes:
            protocol["http2_protocol_options"] = {"initial_stream_window_size": tuning.h2_window_bytes,
                                                  "initial_connection_window_size": tuning.h2_window_bytes}
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": HTTP_OPTIONS, "explicit_http_config": protocol}}
    if tuning.buffer_bytes:
        cluster["per_connection_buffer_limit_bytes"] = tuning.buffer_bytes
    return cluster


def registry_cluster(port: int, tuning: Tuning, *, name: str = "registry") -> dict:
    return _cluster(name, port, tuning, h2=False)  # the sidecar speaks plain HTTP/1.1 to its app


def sidecar_cluster(*, port: int, client: Identity, registry_uri: str, tuning: Tuning, name: str = "sidecar") -> dict:
    """A gateway's upstream (node proxy, push proxy): the sidecar over mTLS with the gateway's own certificate
    (`registry_uri`: the identity the server must present)."""
    cluster = _cluster(name, port, tuning, h2=tuning.upstream_h2)
    tls_context = {"tls_certificates": [_cert(client)],
                   "alpn_protocols": ["h2"] if tuning.upstream_h2 else ["http/1.1"],
                   "validation_context": {"trusted_ca": {"filename": str(client.ca)},
                                          "match_typed_subject_alt_names": [
                                              {"san_type": "URI", "matcher": {"exact": registry_uri}}]}}
    cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": UPSTREAM_TLS, "common_tls_context": tls_context}}
    return cluster


def bootstrap(*, admin_port: int, listeners: list[dict], clusters: list[dict]) -> dict:
    return {"admin": {"address": _address(admin_port)},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


def counter(admin: str, name: str) -> int:
    """One counter from Envoy's admin interface at `admin` (host:port), e.g. http.egress.downstream_rq_5xx; 0 while
    Envoy has not created it."""
    text = httpx.get(f"http://{admin}/stats", params={"filter": "^" + name.replace(".", r"\.") + "$"}).text
    return int(text.split(":")[1]) if ":" in text else 0
