"""What `render` produces, object by object, as DESIGN.md describes it."""

from __future__ import annotations

import yaml

from meshreg import config
from meshreg.render import manifests, render
from support.configs import SEVERAL_WRITERS, minimal
from support.configs import rendered as objects


def test_every_object_carries_the_common_labels():
    for obj in render(config.from_text(SEVERAL_WRITERS, name="m.yaml")):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshreg", obj["kind"]
        assert labels["app.kubernetes.io/part-of"] == "meshreg"
        assert labels["app.kubernetes.io/instance"] == "dev"


def test_namespace_is_labelled_for_sidecar_injection():
    ns = objects()[("Namespace", "meshreg")]
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    assert "istio.io/rev" not in ns["metadata"]["labels"]


def test_a_revision_replaces_the_injection_label_on_namespace_and_pods():
    objs = objects(minimal("  istioRevision: 1-24\n"))
    labels = objs[("Namespace", "meshreg")]["metadata"]["labels"]
    assert labels["istio.io/rev"] == "1-24" and "istio-injection" not in labels
    for kind, name in (("Deployment", "registry"), ("DaemonSet", "node-proxy")):
        assert objs[(kind, name)]["spec"]["template"]["metadata"]["labels"]["istio.io/rev"] == "1-24"


def test_registry_config_is_a_distribution_config_on_the_volume_with_delete_off():
    objs = objects()
    registry_config = yaml.safe_load(objs[("ConfigMap", "registry-config")]["data"]["config.yml"])
    assert registry_config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert registry_config["storage"]["delete"] == {"enabled": False}
    assert registry_config["health"]["storagedriver"]["enabled"] is True
    mounts = objs[("Deployment", "registry")]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/var/lib/registry"} in mounts


def test_delete_enabled_reaches_the_registry_config():
    text = objects(SEVERAL_WRITERS)[("ConfigMap", "registry-config")]["data"]["config.yml"]
    assert yaml.safe_load(text)["storage"]["delete"] == {"enabled": True}


def test_changing_the_registry_config_rolls_the_registry_pod():
    def config_hash(text):
        template = objects(text)[("Deployment", "registry")]["spec"]["template"]
        return template["metadata"]["annotations"]["meshreg.dev/config-hash"]

    assert config_hash(minimal()) != config_hash(minimal("  registry: {deleteEnabled: true}\n"))


def test_pvc_is_kept_by_argo_cd_and_flux_and_sized_from_config():
    pvc = objects(SEVERAL_WRITERS)[("PersistentVolumeClaim", "registry-data")]
    annotations = pvc["metadata"]["annotations"]
    assert set(annotations["argocd.argoproj.io/sync-options"].split(",")) == {"Prune=false", "Delete=false"}
    assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert "storageClassName" not in objects()[("PersistentVolumeClaim", "registry-data")]["spec"]


def test_deployment_recreates_runs_non_root_and_probes_the_api():
    dep = objects()[("Deployment", "registry")]
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # istio-init needs root, so the pod itself must not demand non-root.
    assert "runAsNonRoot" not in pod["securityContext"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/v2/", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_service_declares_http_so_istio_applies_method_rules():
    svc = objects()[("Service", "registry")]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 5000, "targetPort": "http", "protocol": "TCP",
                                     "appProtocol": "http"}]


def test_peer_authentication_is_strict_on_the_registry_pods():
    objs = objects()
    pa = objs[("PeerAuthentication", "registry")]
    assert pa["spec"]["mtls"] == {"mode": "STRICT"}
    assert pa["spec"]["selector"]["matchLabels"] == objs[("Deployment", "registry")]["spec"]["selector"]["matchLabels"]


def test_node_proxy_is_an_istio_gateway_on_every_node_bound_to_loopback():
    ds = objects(minimal("  nodeProxy: {port: 5555}\n"))[("DaemonSet", "node-proxy")]
    template = ds["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"]["inject.istio.io/templates"] == "gateway"
    assert template["spec"]["tolerations"] == [{"operator": "Exists"}]
    (container,) = template["spec"]["containers"]
    assert container["name"] == "istio-proxy" and container["image"] == "auto"
    assert container["ports"] == [{"name": "http-5555", "containerPort": 5555, "hostPort": 5555,
                                   "hostIP": "127.0.0.1", "protocol": "TCP"}]


def test_node_proxy_service_gateway_and_route_agree_on_the_port():
    objs = objects(minimal("  nodeProxy: {port: 5555}\n  namespace: reg\n"))
    assert objs[("Service", "node-proxy")]["spec"]["ports"][0]["targetPort"] == 5555
    server = objs[("Gateway", "node-proxy")]["spec"]["servers"][0]
    assert server["port"] == {"number": 5555, "name": "http-5555", "protocol": "HTTP"}
    vs = objs[("VirtualService", "node-proxy")]["spec"]
    assert vs["gateways"] == ["node-proxy"]
    (route,) = vs["http"]
    assert "timeout" not in route and route["match"] == [{"port": 5555}]
    assert route["route"][0]["destination"] == {"host": "registry.reg.svc.cluster.local", "port": {"number": 5000}}
    pods = objs[("DaemonSet", "node-proxy")]["spec"]["template"]["metadata"]["labels"]
    assert objs[("Gateway", "node-proxy")]["spec"]["selector"].items() <= pods.items()
    assert objs[("Service", "node-proxy")]["spec"]["selector"].items() <= pods.items()


def test_node_proxy_policy_allows_only_get_and_head():
    policy = objects()[("AuthorizationPolicy", "node-proxy-allow-reads")]["spec"]
    assert policy["action"] == "ALLOW"
    assert policy["rules"] == [{"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}]


def test_disabling_the_node_proxy_drops_its_objects_and_its_address():
    objs = objects(minimal("  nodeProxy: {enabled: false}\n"))
    assert not [key for key in objs if "node-proxy" in key[1]]
    hosting = yaml.safe_load(objs[("ConfigMap", "local-registry-hosting")]["data"]["localRegistryHosting.v1"])
    assert "hostFromContainerRuntime" not in hosting


def test_kep_1755_config_map_publishes_both_addresses():
    cm = objects(minimal("  namespace: reg\n  nodeProxy: {port: 5001}\n"))[("ConfigMap", "local-registry-hosting")]
    assert cm["metadata"]["namespace"] == "kube-public"
    hosting = yaml.safe_load(cm["data"]["localRegistryHosting.v1"])
    assert hosting["hostFromContainerRuntime"] == "localhost:5001"
    assert hosting["hostFromClusterNetwork"] == "registry.reg.svc.cluster.local:5000"
    assert hosting["host"] == "localhost:5001" and hosting["help"]


def test_rendering_is_byte_identical_and_independent_of_writer_order():
    cfg = config.from_text(SEVERAL_WRITERS, name="m.yaml")
    first = manifests.dump_all(render(cfg))
    assert first == manifests.dump_all(render(config.from_text(SEVERAL_WRITERS, name="m.yaml")))
    doc = yaml.safe_load(SEVERAL_WRITERS)
    doc["spec"]["writers"].reverse()
    doc["spec"]["readers"].reverse()
    reordered = yaml.safe_dump(doc)
    assert manifests.dump_all(render(config.from_text(reordered, name="m.yaml"))) == first


def test_policy_size_grows_linearly_with_writers():
    def size(n):
        writers = "".join(f"    - {{serviceAccount: ns{i}/sa, repositories: [p{i % 10}/]}}\n" for i in range(n))
        cfg = config.from_text(minimal("  writers:\n" + writers), name="m.yaml")
        return len(manifests.dump_all(render(cfg)))

    base = size(0)
    growth_100, growth_200 = size(100) - base, size(200) - base
    assert 1.8 < growth_200 / growth_100 < 2.2
