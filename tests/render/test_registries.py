"""Several registries with separate roles: config checks and what each role renders."""

from __future__ import annotations

import pytest
import yaml

from meshreg import config
from meshreg.errors import ConfigError
from meshreg.render import manifests, render
from support.configs import minimal, rendered
from support.paths import ROOT

EXAMPLES = ROOT / "examples"
# Examples with a config of their own (skaffold/ and tilt/ use the one in builders/).
CONFIGURED = sorted(p.name for p in EXAMPLES.iterdir() if (p / "meshreg.yaml").exists())

TWO = """\
  registries:
    - name: workspace-images
      default: true
      port: 5000
      writers:
        - serviceAccount: gitpod/image-builder
    - name: service-images
      role: readonly
      publisher: gitpod/airgap-loader
      port: 5001
"""

MIRROR = """\
  registries:
    - name: images
      port: 5000
      default: true
    - name: hub
      role: mirror
      port: 5002
      mirror: {upstream: "https://registry-1.docker.io", credentialsSecret: hub-creds,
               extraHosts: [production.cloudflare.docker.com]}
"""


def objects(spec: str) -> dict:
    return rendered(minimal(spec))


def error_of(spec: str) -> str:
    with pytest.raises(ConfigError) as e:
        config.from_text(minimal(spec), name="m.yaml")
    return str(e.value)


def test_the_single_registry_shape_is_one_default_registry_named_registry():
    cfg = config.from_text(minimal("  nodeProxy: {port: 5005}\n"), name="m.yaml")
    (reg,) = cfg.registries
    assert (reg.name, reg.role, reg.default, reg.port) == ("registry", "images", True, 5005)


def test_each_registry_gets_its_own_storage_service_and_policies():
    objs = objects(TWO)
    for name in ("workspace-images", "service-images"):
        assert ("Deployment", name) in objs and ("Service", name) in objs
        assert ("PersistentVolumeClaim", f"{name}-data") in objs and ("ConfigMap", f"{name}-config") in objs
        for suffix in ("deny-writes", "allow-reads", "allow-writes"):
            policy = objs[("AuthorizationPolicy", f"{name}-{suffix}")]
            assert policy["spec"]["selector"]["matchLabels"]["meshreg.dev/registry"] == name
    selectors = {objs[("Deployment", n)]["spec"]["selector"]["matchLabels"]["meshreg.dev/registry"]
                 for n in ("workspace-images", "service-images")}
    assert selectors == {"workspace-images", "service-images"}


def test_one_node_proxy_serves_every_registry_on_its_own_port():
    objs = objects(TWO)
    ports = objs[("DaemonSet", "node-proxy")]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert [(p["hostPort"], p["hostIP"]) for p in ports] == [(5000, "127.0.0.1"), (5001, "127.0.0.1")]
    assert [s["port"]["number"] for s in objs[("Gateway", "node-proxy")]["spec"]["servers"]] == [5000, 5001]
    routes = {r["match"][0]["port"]: r["route"][0]["destination"]["host"]
              for r in objs[("VirtualService", "node-proxy")]["spec"]["http"]}
    assert routes == {5000: "workspace-images.meshreg.svc.cluster.local",
                      5001: "service-images.meshreg.svc.cluster.local"}


def test_a_readonly_registry_lets_only_its_publisher_write():
    spec = objects(TWO)[("AuthorizationPolicy", "service-images-deny-writes")]["spec"]
    assert spec["rules"][0]["from"] == [{"source": {"notPrincipals": ["cluster.local/ns/gitpod/sa/airgap-loader"]}}]
    workspace = objects(TWO)[("AuthorizationPolicy", "workspace-images-deny-writes")]["spec"]
    writer = "cluster.local/ns/gitpod/sa/image-builder"
    assert workspace["rules"][0]["from"] == [{"source": {"notPrincipals": [writer]}}]


def test_a_readonly_registry_without_publisher_denies_every_write():
    objs = objects(TWO.replace("      publisher: gitpod/airgap-loader\n", ""))
    deny = objs[("AuthorizationPolicy", "service-images-deny-writes")]["spec"]["rules"]
    assert deny == [{"to": [{"operation": {"notMethods": ["GET", "HEAD"]}}]}]
    assert objs[("AuthorizationPolicy", "service-images-allow-writes")]["spec"]["rules"] == []


def test_a_mirror_is_read_only_and_keeps_credentials_in_the_secret():
    objs = objects(MIRROR)
    registry_config = yaml.safe_load(objs[("ConfigMap", "hub-config")]["data"]["config.yml"])
    assert set(registry_config["proxy"]) == {"remoteurl"}  # no username or password in the file
    env = objs[("Deployment", "hub")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env} == {
        "REGISTRY_PROXY_USERNAME": {"name": "hub-creds", "key": "username"},
        "REGISTRY_PROXY_PASSWORD": {"name": "hub-creds", "key": "password"}}
    deny = objs[("AuthorizationPolicy", "hub-deny-writes")]["spec"]["rules"]
    assert deny == [{"to": [{"operation": {"notMethods": ["GET", "HEAD"]}}]}]
    assert "Secret" not in {k for k, _ in objs}


def test_every_registry_publishes_its_three_addresses():
    objs = objects(TWO)
    kep = yaml.safe_load(objs[("ConfigMap", "local-registry-hosting")]["data"]["localRegistryHosting.v1"])
    assert kep["hostFromClusterNetwork"] == "workspace-images.meshreg.svc.cluster.local:5000"
    index = objs[("ConfigMap", "meshreg-dev-registries")]
    assert index["metadata"]["namespace"] == "kube-public"
    assert index["metadata"]["labels"]["meshreg.dev/local-registry-hosting"] == "v1"
    service = yaml.safe_load(index["data"]["service-images"])
    assert service["host"] == "localhost:5001" and service["hostFromContainerRuntime"] == "localhost:5001"
    assert service["hostFromClusterNetwork"] == "service-images.meshreg.svc.cluster.local:5000"
    assert service["role"] == "readonly" and service["default"] is False


def test_a_single_registry_has_no_index_config_map():
    assert not [k for k in objects("") if k[1].endswith("-registries")]


@pytest.mark.parametrize(("spec", "expected"), [
    (TWO.replace("port: 5001", "port: 5000"),
     "spec.registries[1].port: 5000 is already the node-proxy port of spec.registries[0]"),
    (TWO.replace("name: service-images", "name: workspace-images"),
     "spec.registries[1].name: 'workspace-images' is already the name of spec.registries[0]"),
    (TWO.replace("      default: true\n", ""), "exactly one registry must be `default: true`"),
    (TWO.replace("      role: readonly\n", "      role: readonly\n      default: true\n"),
     "spec.registries[1].default: exactly one registry"),
    (TWO.replace("role: readonly", "role: archive"), "spec.registries[1].role: 'archive' is not a role"),
    (MIRROR.replace('      mirror: {upstream: "https://registry-1.docker.io", credentialsSecret: hub-creds,\n'
                    "               extraHosts: [production.cloudflare.docker.com]}\n", ""),
     "spec.registries[1].mirror: a mirror registry needs mirror: {upstream"),
    (MIRROR.replace('upstream: "https://registry-1.docker.io", ', ""),
     "spec.registries[1].mirror: missing required key 'upstream'"),
    (MIRROR.replace("https://registry-1.docker.io", "ftp://x"), "spec.registries[1].mirror.upstream: 'ftp://x'"),
    (MIRROR.replace("hub-creds", "Hub_Creds"), "spec.registries[1].mirror.credentialsSecret: 'Hub_Creds'"),
    (MIRROR.replace("      role: mirror\n", "      role: mirror\n      publisher: a/b\n"),
     "spec.registries[1].publisher: only a readonly registry has a publisher "
     "(this one is mirror: a mirror is read-only"),
    (TWO.replace("publisher: gitpod/airgap-loader", "writers: [{serviceAccount: a/b}]"),
     "spec.registries[1].writers: a readonly registry has no writers; name the one identity"),
    (TWO.replace("- name: workspace-images", "- name: node-proxy"), "'node-proxy' is reserved"),
    (TWO.replace("- name: workspace-images", "- name: 9lives"), "'9lives' is not a valid registry name"),
    ("  writers: []\n" + TWO, "spec.writers: with spec.registries, set writers on each registry"),
    ("  nodeProxy: {port: 5000}\n" + TWO, "spec.nodeProxy.port: with spec.registries, each registry has its own port"),
    ("  registries: []\n", "spec.registries: expected a non-empty list of registries"),
])
def test_collisions_and_contradictions_are_one_line(spec, expected):
    assert expected in error_of(spec)


@pytest.mark.parametrize("example", CONFIGURED)
def test_every_example_renders_deterministically(example):
    text = (EXAMPLES / example / "meshreg.yaml").read_text()
    first = manifests.dump_all(render(config.from_text(text, name="meshreg.yaml")))
    assert first == manifests.dump_all(render(config.from_text(text, name="meshreg.yaml")))
    assert (EXAMPLES / example / "README.md").exists()


@pytest.mark.parametrize("example", CONFIGURED)
def test_every_example_validates_against_kubernetes_and_istio_schemas(example):
    from support import validation
    from support.paths import SHARED

    if not (SHARED / "schemas").is_dir():
        pytest.skip(f"{SHARED / 'schemas'} is absent: the Istio CRD schemas live there")
    cfg = config.from_text((EXAMPLES / example / "meshreg.yaml").read_text(), name="meshreg.yaml")
    assert not validation.errors_in(render(cfg), validation.kubernetes_versions()[-1:])
