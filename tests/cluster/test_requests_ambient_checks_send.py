"""The requests the ambient checks send with the real kubernetes client, on the tiny local API server."""

from __future__ import annotations

from meshreg.cluster import ambient

WAYPOINT = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "waypoint", "namespace": "meshreg"}, "spec": {"gatewayClassName": "istio-waypoint"}}
DISCOVERY = "/apis/gateway.networking.k8s.io/v1"
CLASS = "/apis/gateway.networking.k8s.io/v1/gatewayclasses/istio-waypoint"


def test_preflight_reads_discovery_the_cluster_scoped_gateway_class_and_daemon_sets_everywhere(api, cluster):
    api.routes[("GET", DISCOVERY)] = (200, {"resources": [{"name": "gateways"}, {"name": "gatewayclasses"}]})
    api.routes[("GET", CLASS)] = (200, {"metadata": {"name": "istio-waypoint"}})
    api.routes[("GET", "/apis/apps/v1/daemonsets")] = (200, {"items": [{"metadata": {
        "name": "ztunnel", "namespace": "istio-system"}, "spec": {"template": {"metadata": {"labels": {
            "app": "ztunnel"}}}}}]})
    assert all(c.ok for c in ambient.checks(cluster=cluster, manifests=[WAYPOINT]))
    assert [r["path"] for r in api.requests] == [DISCOVERY, CLASS, "/apis/apps/v1/daemonsets"]


def test_a_missing_gateway_class_is_the_servers_404_read_as_absent(api, cluster):
    api.routes[("GET", DISCOVERY)] = (200, {"resources": [{"name": "gateways"}]})
    failed = [c for c in ambient.checks(cluster=cluster, manifests=[WAYPOINT]) if c.ok is False]
    assert "there is no GatewayClass istio-waypoint" in failed[0].detail


def test_without_the_gateway_api_discovery_answers_404_and_the_class_is_not_asked_for(api, cluster):
    failed = [c for c in ambient.checks(cluster=cluster, manifests=[WAYPOINT]) if c.ok is False]
    assert "does not serve the Gateway API" in failed[0].detail
    assert CLASS not in [r["path"] for r in api.requests]
