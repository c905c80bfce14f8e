"""Where a waypoint's audit record finds the client's identity, on a real Envoy laid out as Istio lays out a waypoint.

Istio's waypoint ends the client's HBONE tunnel (mTLS with the client's certificate, an HTTP CONNECT) on one listener,
`connect_terminate`, whose `connect_authority` filter keeps the verified peer in filter state
`io.istio.peer_principal` (from %DOWNSTREAM_PEER_URI_SAN%, shared with the upstream connection), and handles the
HTTP request inside on an internal listener, `main_internal`, where the L7 policies and the access logs run (Istio
1.30: pilot/pkg/networking/core/listener_waypoint.go, pilot/pkg/xds/filters/filters.go). The TLS peer there is the
internal connection, which has none; so meshreg's format logs both, and `meshreg audit` takes the filter state.

Here a real Envoy has that layout (HTTP/1.1 CONNECT instead of HBONE's HTTP/2 CONNECT, Envoy's own set_filter_state
filter and `envoy.string` instead of istio-proxy's hashable string: the filter state travels the same way), the audit
access log on the internal listener as istiod builds it from the rendered `waypoint-audit` Telemetry, and the real
registry behind it."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from meshreg import config
from meshreg.audit import parse_line, trail
from support.e2e_cases import AMBIENT_WITH_DELETE, SCOPED, WRITER
from support.lab import envoy, telemetry
from support.lab.mesh import Lab, one
from support.lab.pki import spiffe
from support.lab.processes import free_port, start_envoy

SFS = "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config"
INTERNAL = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
SOCKETS = "type.googleapis.com/envoy.extensions.transport_sockets"
INTERNAL_UPSTREAM = f"{SOCKETS}.internal_upstream.v3.InternalUpstreamTransport"
RAW_BUFFER = f"{SOCKETS}.raw_buffer.v3.RawBuffer"


class WaypointLab(Lab):
    """The registry behind an Envoy with a waypoint's two listeners (no RBAC: this is about what is logged)."""

    def _start_envoy(self) -> None:
        ns, td = self.cfg.namespace, self.cfg.trust_domain
        self.waypoint_identity = self.ca.issue(spiffe(td, f"{ns}/waypoint"), label="waypoint", server=True)
        self.connect_port, admin = free_port(), free_port()
        gateway = one(self.objects, "Gateway", "waypoint")
        logs = telemetry.access_logs([self._as_selected(gateway)], namespace=ns, pod_labels={"waypoint": "yes"},
                                     mode="SERVER", stdout=self.stdout("waypoint"))
        bootstrap = envoy.bootstrap(admin_port=admin, listeners=[self._connect_terminate(), self._main_internal(logs)],
                                    clusters=[envoy.registry_cluster(self.registry_port, self.tuning),
                                              self._internal_cluster()])
        bootstrap["bootstrap_extensions"] = [{"name": "envoy.bootstrap.internal_listener",
                                              "typed_config": {"@type": INTERNAL}}]
        self.servers.append(start_envoy(bootstrap, self.root / "envoy.json"))

    def _as_selected(self, gateway: dict) -> dict:
        """The rendered waypoint-audit Telemetry (attached to the waypoint Gateway by targetRefs), as the lab's
        translator takes a selector."""
        [found] = [o for o in self.objects if o["kind"] == "Telemetry" and o["metadata"]["name"] == "waypoint-audit"]
        assert found["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                "name": gateway["metadata"]["name"]}]
        spec = {k: v for k, v in found["spec"].items() if k != "targetRefs"}
        return {**found, "spec": {**spec, "selector": {"matchLabels": {"waypoint": "yes"}}}}

    def _connect_terminate(self) -> dict:
        keep = {"object_key": "io.istio.peer_principal", "factory_key": "envoy.string",
                "format_string": {"text_format_source": {"inline_string": "%DOWNSTREAM_PEER_URI_SAN%"}},
                "shared_with_upstream": "ONCE"}
        hcm = envoy._hcm("connect_terminate", cluster="main_internal", route_timeout="0s", filters=[
            {"name": "connect_authority", "typed_config": {"@type": SFS, "on_request_headers": [keep]}}])
        config_ = hcm["typed_config"]
        config_["upgrade_configs"] = [{"upgrade_type": "CONNECT"}]
        config_["route_config"]["virtual_hosts"][0]["routes"] = [{
            "match": {"connect_matcher": {}},
            "route": {"cluster": "main_internal", "upgrade_configs": [{"upgrade_type": "CONNECT",
                                                                        "connect_config": {}}]}}]
        tls = envoy.downstream_tls(self.waypoint_identity, self.cfg.trust_domain)
        tls["common_tls_context"]["alpn_protocols"] = ["http/1.1"]
        return {"name": "connect_terminate", "address": envoy._address(self.connect_port), "filter_chains": [{
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls}, "filters": [hcm]}]}

    def _main_internal(self, logs: list[dict]) -> dict:
        hcm = envoy._hcm("main_internal", cluster="registry", route_timeout="0s", filters=[], access_log=logs)
        return {"name": "main_internal", "internal_listener": {}, "filter_chains": [{"filters": [hcm]}]}

    def _internal_cluster(self) -> dict:
        """As istiod builds `main_internal` (cluster_waypoint.go): the internal listener behind an internal_upstream
        transport socket around raw buffers."""
        raw = {"name": "raw_buffer", "typed_config": {"@type": RAW_BUFFER}}
        return {"name": "main_internal", "connect_timeout": "5s", "load_assignment": {
            "cluster_name": "main_internal", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "envoy_internal_address": {"server_listener_name": "main_internal"}}}}]}]},
            "transport_socket": {"name": "internal_upstream", "typed_config": {"@type": INTERNAL_UPSTREAM,
                                                                               "transport_socket": raw}}}


@pytest.fixture(scope="module")
def waypoint_lab(real_parts, tmp_path_factory) -> Iterator[WaypointLab]:
    with closing(WaypointLab(AMBIENT_WITH_DELETE, tmp_path_factory.mktemp("waypoint"))) as lab:
        yield lab


def through_tunnel(lab: WaypointLab, who: str, request: bytes) -> bytes:
    """A CONNECT tunnel with `who`'s certificate, then `request` inside it; what came back inside."""
    context = ssl.create_default_context(cafile=str(lab.ca.ca_file))
    ident = lab.identity(who)
    context.load_cert_chain(str(ident.cert), str(ident.key))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", lab.connect_port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(b"CONNECT registry:5000 HTTP/1.1\r\nHost: registry:5000\r\n\r\n")
        answer = tls.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        tls.sendall(request)
        return tls.recv(65536)


def request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: registry:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()


def records(lab: WaypointLab, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in map(parse_line, lab.proxy_log("waypoint").splitlines()) if r]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the waypoint logged {lab.proxy_log('waypoint')!r}")


def test_the_waypoint_record_names_the_client_from_istios_filter_state(waypoint_lab):
    answers = [through_tunnel(waypoint_lab, WRITER, request("POST", "/v2/builds/app/blobs/uploads/")),
               through_tunnel(waypoint_lab, SCOPED, request("POST", "/v2/team-a%2Fapp/blobs/uploads/")),
               through_tunnel(waypoint_lab, SCOPED, request("GET", "/v2/"))]  # a read: not an audit record
    assert all(a.startswith(b"HTTP/1.1 202") for a in answers[:2]) and answers[2].startswith(b"HTTP/1.1 200")
    found = records(waypoint_lab, 2)
    assert len(found) == 2 and {r.peer for r in found} == {None}  # the internal listener has no TLS peer
    td = waypoint_lab.cfg.trust_domain
    assert [r.peer_principal for r in found] == [f"spiffe://{td}/ns/builds/sa/kaniko",
                                                 f"spiffe://{td}/ns/team-a/sa/builder"]
    cfg = config.from_text(AMBIENT_WITH_DELETE, name="ambient.yaml")
    events = trail([("waypoint", found)], cfg=cfg, registry=cfg.registry)
    assert [(e.who.name, e.action, e.repository) for e in events] == [(WRITER, "upload", "builds/app"),
                                                                      (SCOPED, "upload", "team-a/app")]


def test_the_rendered_filter_keeps_the_writes_and_leaves_out_the_read(waypoint_lab):
    through_tunnel(waypoint_lab, WRITER, request("GET", "/v2/_catalog"))
    records(waypoint_lab, 2)
    time.sleep(0.5)  # five of Envoy's flush intervals: a logged read would be in the file by now
    lines = [json.loads(line) for line in waypoint_lab.proxy_log("waypoint").splitlines() if line.startswith("{")]
    assert [line["method"] for line in lines] == ["POST", "POST"]
