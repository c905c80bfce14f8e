"""`spec.mesh: ambient`: the same policies attached to a waypoint, ztunnel letting only the waypoint in, no sidecars."""

from __future__ import annotations

from meshreg import config
from meshreg.render import render
from support.configs import AMBIENT, SEVERAL_WRITERS, rendered

SPLIT = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: split}
spec:
  namespace: images
  mesh: ambient
  registries:
    - {name: workspace, port: 5000, default: true, writers: [{serviceAccount: ci/builder}]}
    - {name: service, port: 5001, role: readonly, publisher: ci/loader}
"""


AMB, SIDE = rendered(AMBIENT, name="ambient.yaml"), rendered(SEVERAL_WRITERS, name="sidecar.yaml")
WAYPOINT_PRINCIPAL = "example.org/ns/registry/sa/waypoint"


def test_the_namespace_is_enrolled_with_ztunnel_and_not_labelled_for_injection():
    labels = AMB[("Namespace", "registry")]["metadata"]["labels"]
    assert labels["istio.io/dataplane-mode"] == "ambient"
    assert "istio-injection" not in labels and "istio.io/rev" not in labels


def test_registry_pods_ask_for_no_sidecar_and_carry_no_revision():
    labels = AMB[("Deployment", "registry")]["spec"]["template"]["metadata"]["labels"]
    assert labels["sidecar.istio.io/inject"] == "false" and "istio.io/rev" not in labels


def test_the_registry_service_sends_mesh_and_gateway_traffic_through_the_waypoint():
    labels = AMB[("Service", "registry")]["metadata"]["labels"]
    assert labels["istio.io/use-waypoint"] == "waypoint"
    assert labels["istio.io/ingress-use-waypoint"] == "true"


def test_the_waypoint_is_an_istio_waypoint_gateway_with_the_hbone_listener_for_services():
    gateway = AMB[("Gateway", "waypoint")]
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"] == {"gatewayClassName": "istio-waypoint",
                               "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}
    assert gateway["metadata"]["labels"]["istio.io/waypoint-for"] == "service"


def test_the_revision_picks_the_control_plane_of_the_waypoint_and_the_node_proxy():
    assert AMB[("Gateway", "waypoint")]["metadata"]["labels"]["istio.io/rev"] == "stable"
    assert AMB[("DaemonSet", "node-proxy")]["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == "stable"


def test_l7_policies_attach_to_the_registry_service_and_keep_the_sidecar_rules():
    for name in ("registry-deny-writes", "registry-allow-reads", "registry-allow-writes"):
        ambient, sidecar = AMB[("AuthorizationPolicy", name)]["spec"], SIDE[("AuthorizationPolicy", name)]["spec"]
        assert ambient["targetRefs"] == [{"group": "", "kind": "Service", "name": "registry"}]
        assert "selector" not in ambient
        assert {k: v for k, v in ambient.items() if k != "targetRefs"} == \
            {k: v for k, v in sidecar.items() if k != "selector"}


def test_the_l4_policy_on_the_registry_pods_admits_only_the_waypoint():
    spec = AMB[("AuthorizationPolicy", "registry-allow-waypoint")]["spec"]
    assert spec["selector"] == SIDE[("AuthorizationPolicy", "registry-allow-reads")]["spec"]["selector"]
    assert spec["action"] == "ALLOW"
    assert spec["rules"] == [{"from": [{"source": {"principals": [WAYPOINT_PRINCIPAL]}}]}]


def test_strict_mtls_and_the_node_proxy_are_the_sidecar_modes_own():
    for key in [("PeerAuthentication", "registry"), ("DaemonSet", "node-proxy"), ("Service", "node-proxy"),
                ("Gateway", "node-proxy"), ("VirtualService", "node-proxy"),
                ("AuthorizationPolicy", "node-proxy-allow-reads")]:
        revisioned = rendered(SEVERAL_WRITERS + "  istioRevision: stable\n", name="sidecar.yaml")[key]
        assert AMB[key] == revisioned, key


def test_ambient_adds_only_the_waypoint_and_one_l4_policy_per_registry_and_audits_at_the_waypoint():
    assert set(AMB) - set(SIDE) == {("Gateway", "waypoint"), ("AuthorizationPolicy", "registry-allow-waypoint"),
                                    ("Telemetry", "waypoint-audit")}
    assert set(SIDE) - set(AMB) == {("Telemetry", "registry-audit")}  # the registry pods have no proxy to log


def test_with_several_registries_each_service_has_its_own_policies_and_all_share_one_waypoint():
    objs = rendered(SPLIT, name="ambient.yaml")
    for reg in ("workspace", "service"):
        assert objs[("Service", reg)]["metadata"]["labels"]["istio.io/use-waypoint"] == "waypoint"
        for suffix in ("deny-writes", "allow-reads", "allow-writes"):
            assert objs[("AuthorizationPolicy", f"{reg}-{suffix}")]["spec"]["targetRefs"][0]["name"] == reg
        l4 = objs[("AuthorizationPolicy", f"{reg}-allow-waypoint")]["spec"]
        assert l4["selector"]["matchLabels"]["meshreg.dev/registry"] == reg
        assert l4["rules"][0]["from"][0]["source"]["principals"] == ["cluster.local/ns/images/sa/waypoint"]
    assert [k for k in objs if k[0] == "Gateway" and k[1] == "waypoint"] == [("Gateway", "waypoint")]


def test_mesh_sidecar_spelled_out_renders_exactly_the_default():
    explicit = config.from_text(SEVERAL_WRITERS + "  mesh: sidecar\n", name="sidecar.yaml")
    assert render(explicit) == render(config.from_text(SEVERAL_WRITERS, name="sidecar.yaml"))
