"""An `up` with nothing to do, on the real API server (cluster/settled.py): it knows so from the server's dry run alone,
sends no LIST and at most 30 requests with every check; anything less than settled — an object deleted by hand, a
parent an interrupted `up` left pending — and it reads and repairs as before: the deleted policy comes back, the
member left behind is pruned. Requests are counted by a proxy in front of the API server."""

from __future__ import annotations

import json
import re
import time

import pytest

from meshreg.cluster.settled import SKEW
from meshreg.render import render
from meshreg.render.labels import APPLYSET_MEMBERS, APPLYSET_PART_OF, INSTANCE, MANAGED_BY, applyset, is_parent
from support import realstack
from support.apiproxy import ApiProxy

NAME, PORT = "rs-settled", 5171
TEXT = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAME}}}
spec:
  namespace: {NAME}
  localRegistryHosting: {{publish: false}}
  audit: {{enabled: false}}
  registries:
    - {{name: registry, default: true, port: {PORT}, storage: {{size: 256Mi}},
       writers: [{{serviceAccount: {NAME}-w/pusher}}]}}
"""
LIST = re.compile(r"^/api(s/[^/]+)?/v1/namespaces/[^/]+/[a-z]+$")  # a collection in a namespace


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, TEXT) as it:
        yield it


@pytest.fixture
def proxy(instance, workdir):
    it = ApiProxy(instance.stack.kubeconfig, workdir)
    yield it
    it.close()


def up(instance, proxy) -> tuple[str, list[tuple[str, str]]]:
    """`meshreg up --no-wait` through the proxy, once what the last `up` changed is older than the clock skew
    allowed for; its output and the requests it sent."""
    time.sleep(SKEW + 1.5)
    proxy.requests.clear()
    done = instance.meshreg("up", "--no-wait", "--kubeconfig", str(proxy.kubeconfig))
    return done.stdout, list(proxy.requests)


def paths(requests, method: str) -> list[str]:
    return [path.split("?")[0] for m, path in requests if m == method]


def test_an_up_with_nothing_to_do_sends_no_list_and_at_most_30_requests(instance, proxy):
    up(instance, proxy)  # whatever the deploy left (a parent from an earlier version, a rollout) is settled now
    out, sent = up(instance, proxy)
    assert re.search(r"^\d+ unchanged$", out, re.M) and not re.search(r"^(created|changed|pruned) ", out, re.M), out
    patches = [path for m, path in sent if m == "PATCH"]
    assert patches and all("dryRun=All" in p for p in patches), "nothing is written"
    assert len(sent) <= 30, f"{len(sent)} requests: {sent}"
    assert not [p for p in paths(sent, "GET") if LIST.match(p) and f"/namespaces/{NAME}/" in p + "/"
                and not p.endswith(("/pods", "/persistentvolumeclaims", "/daemonsets"))], sent


def test_a_policy_deleted_by_hand_comes_back_on_the_next_up(instance, proxy):
    instance.stack.delete("authorizationpolicy", "registry-deny-writes", namespace=NAME)
    out, sent = up(instance, proxy)
    assert re.search(rf"^created +AuthorizationPolicy {NAME}/registry-deny-writes$", out, re.M), out
    assert instance.stack.get("authorizationpolicy", "registry-deny-writes", namespace=NAME)
    assert any(LIST.match(p) for p in paths(sent, "GET")), "not settled: what exists is read"
    written = [p.split("?")[0] for m, p in sent if m == "PATCH" and "dryRun=All" not in p]
    assert written == [f"/apis/security.istio.io/v1/namespaces/{NAME}/authorizationpolicies/registry-deny-writes"]


def test_a_member_an_interrupted_up_left_behind_is_pruned(instance, proxy):
    """What an `up` that added members leaves when stopped before its prune: the parent marked pending, a member the
    config no longer has. (An `up` that wrote members marks the parent so before its first write.)"""
    parent = next(o for o in render(instance.cfg) if is_parent(o))
    parent["metadata"]["annotations"][APPLYSET_MEMBERS] = "pending"  # as `up` writes it, with its field manager
    instance.stack.kubectl("apply", "--server-side", "--field-manager", "meshreg", "-f", "-", stdin=json.dumps(parent))
    stray = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "left-behind", "namespace": NAME,
        "labels": {APPLYSET_PART_OF: applyset(instance.cfg), MANAGED_BY: "meshreg", INSTANCE: NAME}}}
    instance.stack.apply(stray)
    out, _ = up(instance, proxy)
    assert re.search(rf"^pruned +ConfigMap {NAME}/left-behind$", out, re.M), out
    assert not instance.stack.get("configmap", "left-behind", namespace=NAME)
    notes = instance.stack.get("configmap", parent["metadata"]["name"], namespace=NAME)["metadata"]["annotations"]
    assert notes[APPLYSET_MEMBERS].startswith("sha256:")
    _, sent = up(instance, proxy)
    assert not any(LIST.match(p) and "/configmaps" in p for p in paths(sent, "GET")), "settled again"
