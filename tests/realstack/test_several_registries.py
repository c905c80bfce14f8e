"""Several registries in one instance on the real stack (spec.registries): each its own Deployment, Service,
policies and node-proxy port; a writer of one is refused by the other's policies, a readonly registry takes only its
publisher, the node proxy serves each registry on its own port, and verify checks them all."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from support import realstack
from support.realstack_pods import LogWatch, MeshPod, kubelet_pull

IMAGES, SERVICES = 5103, 5104
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-several}}
spec:
  namespace: rs-several
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  registries:
    - name: images
      default: true
      port: {IMAGES}
      writers: [{{serviceAccount: rs-sev-builds/kaniko}}]
    - name: services
      role: readonly
      publisher: rs-sev-loader/loader
      port: {SERVICES}
"""
KANIKO, LOADER = "rs-sev-builds/kaniko", "rs-sev-loader/loader"


def base(registry: str) -> str:
    return f"http://{registry}.rs-several.svc.cluster.local:5000"


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, CONFIG, accounts=(KANIKO, LOADER)) as found:
        yield found


@pytest.fixture(scope="module")
def pods(stack, instance):
    made = {KANIKO: MeshPod(stack, "rs-sev-builds", "kaniko", service_account="kaniko").start(),
            LOADER: MeshPod(stack, "rs-sev-loader", "loader", service_account="loader").start()}
    yield made
    for pod in made.values():
        pod.stop()


@pytest.fixture(scope="module")
def pushed(pods):
    """Registry name -> (repository, digest) its own writer pushed."""
    images = pods[KANIKO].probe(f"i push {base('images')} apps/web")["i"]
    services = pods[LOADER].probe(f"s push {base('services')} platform/proxy")["s"]
    assert images["result"] == services["result"] == "ok", (images, services)
    return {"images": ("apps/web", images["digest"]), "services": ("platform/proxy", services["digest"])}


def test_each_registry_has_its_own_pods_and_both_are_healthy(instance):
    found = instance.json("status")
    assert [(r["name"], r["ready"], r["withSidecar"]) for r in found["registries"]] == [
        ("images", True, 1), ("services", True, 1)]
    assert found["healthy"]


def test_a_writer_of_one_registry_is_refused_by_the_others_policies(pods, pushed, instance, stack):
    log = LogWatch(stack, instance.namespace, instance.registry_pod("services"))
    found = pods[KANIKO].probe(f"k push {base('services')} apps/sneaky")["k"]
    assert found["status"] == 403
    assert log.find(method="POST", contains="/v2/apps/sneaky/").policy == "services-deny-writes"


def test_the_publisher_of_the_readonly_registry_writes_nothing_else(pods, pushed, instance, stack):
    log = LogWatch(stack, instance.namespace, instance.registry_pod("images"))
    found = pods[LOADER].probe(f"l push {base('images')} platform/sneaky")["l"]
    assert found["status"] == 403
    assert log.find(method="POST", contains="/v2/platform/sneaky/").policy == "images-deny-writes"


def test_the_node_proxy_serves_each_registry_on_its_own_port(pushed):
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}  # distribution hides OCI manifests otherwise
    for name, port in (("images", IMAGES), ("services", SERVICES)):
        repo, digest = pushed[name]
        mine = httpx.head(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{digest}", headers=accept, timeout=10)
        assert mine.status_code == 200, name
        other = SERVICES if port == IMAGES else IMAGES
        found = httpx.head(f"http://127.0.0.1:{other}/v2/{repo}/manifests/{digest}", headers=accept, timeout=10)
        assert found.status_code == 404, name


def test_the_kubelet_pulls_from_each_port(stack, pushed, instance):
    for name, port in (("images", IMAGES), ("services", SERVICES)):
        repo, digest = pushed[name]
        event = kubelet_pull(stack, instance.namespace, f"pull-{name}", f"localhost:{port}/{repo}@{digest}")
        assert event["reason"] == "Pulled" and event["message"].startswith("Successfully pulled"), event


def test_every_address_is_published_in_the_instance_index(stack, instance):
    index = stack.get("configmap", "meshreg-rs-several-registries", namespace="kube-public")
    published = {name: yaml.safe_load(text) for name, text in index["data"].items()}
    assert published["images"]["hostFromContainerRuntime"] == f"localhost:{IMAGES}"
    assert published["services"]["hostFromClusterNetwork"] == "services.rs-several.svc.cluster.local:5000"


def test_verify_checks_both_registries(instance, stack):
    found = instance.json("verify", "--image", stack.curl_image, "--timeout", "120", timeout=400)
    rows = {(v["registry"], v["expectation"]): v["verdict"] for v in found["expectations"]}
    assert found["ok"], json.dumps(found["expectations"], indent=1)
    assert {r for r, _ in rows} == {"images", "services"}
    assert "PASS" in {v for (r, _), v in rows.items() if r == "services"}
