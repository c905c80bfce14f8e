"""A user's whole session on the real stack, with the real CLI: doctor before anything, up (which waits for real
pods with real sidecars), status, verify (probe pods through istiod's policies and the kubelet's own pull), up again,
down (the data stays), up (the data is back), down --purge. Also what the kubelet did with each image: nothing is
pulled that is already on the node, the gateway-injected node proxy included."""

from __future__ import annotations

import json

import httpx
import pytest

from support import realstack
from support.realstack_pods import pod_events

PORT = 5100
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-life}}
spec:
  namespace: rs-life
  nodeProxy: {{port: {PORT}}}
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  writers:
    - serviceAccount: rs-life-builds/kaniko
"""


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, CONFIG, accounts=("rs-life-builds/kaniko",), up=None) as found:
        yield found


def test_doctor_finds_nothing_that_fails_before_up(instance):
    found = instance.json("doctor", check=False)
    fails = [r for r in found["results"] if r["status"] == "FAIL"]
    assert fails == [] and found["ok"], fails
    istio = [r for r in found["results"] if r["check"] == "istio" and "istiod" in r["message"]]
    assert any("1.14" in r["message"] for r in istio), istio  # the lab's istiod, said to be older than 1.22


def rendered(instance) -> int:
    from meshreg.render import render

    return len(render(instance.cfg))


def test_up_deploys_and_waits_for_ready_pods_with_sidecars(instance):
    done = instance.meshreg("up", "--timeout", "180")
    assert f"{rendered(instance)} created" in done.stdout, done.stdout
    assert f"pull (pod specs):          localhost:{PORT}" in done.stdout
    [pod] = instance.pods("app.kubernetes.io/name=registry")
    # holdApplicationUntilProxyStarts: the injector puts istio-proxy first, so the registry starts after it
    assert [c["name"] for c in pod["spec"]["containers"]] == ["istio-proxy", "registry"]


def test_the_injected_node_proxy_keeps_if_not_present_and_the_kubelet_pulls_nothing(instance, stack):
    [pod] = instance.pods("app.kubernetes.io/name=node-proxy")
    [proxy] = pod["spec"]["containers"]
    assert proxy["image"] != "auto" and proxy["imagePullPolicy"] == "IfNotPresent"
    overrides = json.loads(pod["metadata"]["annotations"]["proxy.istio.io/overrides"])
    assert overrides["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    events = pod_events(stack, instance.namespace, pod)
    assert f'Pulled: Container image "{proxy["image"]}" already present on machine' in " ".join(events), events
    assert not [e for e in events if e.startswith("Pulling")], events


def test_the_registry_and_its_sidecar_are_not_pulled_either(instance, stack):
    [pod] = instance.pods("app.kubernetes.io/name=registry")
    assert {c["imagePullPolicy"] for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]} == \
        {"IfNotPresent"}
    events = pod_events(stack, instance.namespace, pod)
    assert not [e for e in events if e.startswith("Pulling")], events
    assert f'Container image "{stack.registry_image}" already present on machine' in " ".join(events)


def test_status_is_healthy(instance):
    found = instance.json("status")
    [registry] = found["registries"]
    assert (registry["ready"], registry["pods"], registry["withSidecar"]) == (True, 1, 1)
    assert registry["mtls"]["effective"] == "STRICT" and registry["endpoints"] == 1
    assert found["nodeProxy"]["ready"] and found["healthy"]
    assert all(o["state"] == "present" for o in found["objects"])


def test_verify_holds_every_expectation_with_its_image_from_the_environment(instance, stack):
    """MESHREG_VERIFY_IMAGE is --image: the default image is not on the node, so only the variable lets it run."""
    found = instance.json("verify", "--timeout", "120", env={"MESHREG_VERIFY_IMAGE": stack.curl_image},
                          timeout=400)
    verdicts = {v["expectation"]: v["verdict"] for v in found["expectations"]}
    assert found["ok"] and set(verdicts.values()) == {"PASS"}, verdicts
    assert len(verdicts) == 7  # writer, bystander, 2 x no sidecar, node proxy read and push, kubelet
    assert found["node"] == stack.node
    # The one real node ran every probe: the scheduler placed the mesh probes (no toleration needed: untainted).
    assert {v["node"] for v in found["expectations"]} == {stack.node}
    kubelet = next(v for v in found["expectations"] if v["expectation"].startswith("kubelet pulls"))
    assert kubelet["observed"].startswith(f"Pulled on {stack.node}: Successfully pulled image \"localhost:{PORT}/")


def test_the_node_proxy_serves_this_host_on_its_loopback_port(instance):
    catalog = httpx.get(f"http://127.0.0.1:{PORT}/v2/_catalog", timeout=10)
    assert catalog.status_code == 200
    assert any(r.startswith("meshreg-verify/") for r in catalog.json()["repositories"]), catalog.text


def test_up_again_changes_nothing(instance):
    done = instance.meshreg("up", "--timeout", "180")
    assert f"{rendered(instance)} unchanged" in done.stdout, done.stdout


def test_down_keeps_the_data_and_an_up_right_after_it_serves_it_again(instance, stack):
    before = httpx.get(f"http://127.0.0.1:{PORT}/v2/_catalog", timeout=10).json()["repositories"]
    instance.meshreg("down")
    assert stack.get("persistentvolumeclaim", "registry-data", namespace=instance.namespace) is not None
    status = instance.meshreg("status", check=False)
    assert status.returncode != 0 and "missing" in status.stdout
    instance.meshreg("up", "--timeout", "180")
    deployment = stack.get("deployment", "registry", namespace=instance.namespace)
    assert "deletionTimestamp" not in deployment["metadata"], "up applied to a Deployment that down left terminating"
    assert instance.json("status")["healthy"]
    assert httpx.get(f"http://127.0.0.1:{PORT}/v2/_catalog", timeout=10).json()["repositories"] == before


def test_down_purge_removes_the_data_and_the_namespace(instance, stack):
    instance.meshreg("down", "--purge", "--yes")
    stack.wait("delete", f"namespace/{instance.namespace}", namespace="default", timeout=120)
    volume = stack.get("persistentvolume", instance.volumes[0].name)
    assert volume["status"]["phase"] == "Released"  # Retain: the data itself is the volume owner's to remove
