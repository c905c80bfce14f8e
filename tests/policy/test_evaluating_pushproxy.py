"""`policy check --as push-proxy`: the push proxy's own policy first, then the registry's for its identity."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.policy.evaluate import evaluate
from meshreg.render import render
from support.configs import minimal

SEVERAL = minimal("""\
  registries:
    - name: images
      port: 5000
      default: true
      pushProxy: {repositories: [dev/]}
      writers: [{serviceAccount: builds/kaniko, repositories: [team-a/]}]
    - name: loaded
      port: 5001
      role: readonly
      publisher: meshreg-push-loaded/push-proxy
      pushProxy: {repositories: [airgap/]}
    - name: plain
      port: 5002
""")
OBJECTS = render(config.from_text(SEVERAL, name="m.yaml"))


def decide(method: str, path: str, *, registry: str = "images", identity: str = "push-proxy"):
    return evaluate(OBJECTS, identity=identity, method=method, path=path, registry=registry)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v2/dev/app/blobs/uploads/"), ("PATCH", "/v2/dev/app/blobs/uploads/x"),
    ("PUT", "/v2/dev/app/manifests/v1"), ("GET", "/v2/team-a/app/manifests/v1"), ("HEAD", "/v2/x/blobs/sha256:0"),
])
def test_the_push_proxy_may_read_everything_and_write_inside_its_scope(method, path):
    d = decide(method, path)
    assert d.allowed, d.reason
    assert d.reason.startswith("at the push proxy: ALLOW") and "cluster.local/ns/meshreg-push-images/sa/push-proxy" \
        in d.reason


@pytest.mark.parametrize(("method", "path", "policy"), [
    ("POST", "/v2/team-a/app/blobs/uploads/", "images-deny-writes"),
    ("PUT", "/v2/devx/app/manifests/v1", "images-deny-writes"),
    ("POST", "/v2/team-b%2Fapp/blobs/uploads/", "images-deny-writes"),
    ("POST", "/v2/dev/%2e%2e/team-b/app/blobs/uploads/", "images-deny-writes"),
])
def test_the_registry_denies_the_push_proxy_outside_its_scope(method, path, policy):
    d = decide(method, path)
    assert not d.allowed and d.policy == policy
    assert "then at the registry as" in d.reason


def test_delete_never_passes_the_push_proxy_even_inside_its_scope():
    d = decide("DELETE", "/v2/dev/app/manifests/sha256:" + "0" * 64)
    assert not d.allowed and d.reason.startswith("at the push proxy: no ALLOW rule matches")


def test_paths_outside_the_registry_api_stop_at_the_push_proxy():
    assert decide("GET", "/debug/vars").reason.startswith("at the push proxy: no ALLOW rule matches")


def test_each_registry_is_checked_through_its_own_push_proxy():
    assert decide("POST", "/v2/airgap/app/blobs/uploads/", registry="loaded").allowed
    assert not decide("POST", "/v2/dev/app/blobs/uploads/", registry="loaded").allowed
    assert "meshreg-push-loaded/sa/push-proxy" in decide("GET", "/v2/", registry="loaded").reason


def test_a_registry_without_a_push_proxy_says_so():
    d = decide("GET", "/v2/", registry="plain")
    assert not d.allowed and d.reason == "registry plain has no push proxy (pushProxy is not enabled)"


def test_the_push_proxy_identity_alone_is_the_same_writer_at_the_registry():
    identity = "meshreg-push-images/push-proxy"
    assert decide("POST", "/v2/dev/app/blobs/uploads/", identity=identity).allowed
    assert not decide("POST", "/v2/team-a/app/blobs/uploads/", identity=identity).allowed


def run(*args: str, path) -> tuple[int, str]:
    path.write_text(SEVERAL)
    result = CliRunner().invoke(main, [*args, "-c", str(path)])
    return result.exit_code, result.output


def test_policy_check_push_through_the_push_proxy_exits_0_in_scope_and_3_outside(tmp_path):
    assert run("policy", "check", "--as", "push-proxy", "push", "dev/app", path=tmp_path / "m.yaml")[0] == 0
    code, out = run("policy", "check", "--as", "push-proxy", "push", "team-a/app", path=tmp_path / "m.yaml")
    assert code == 3 and "DENY  POST   /v2/team-a/app/blobs/uploads/" in out


def test_policy_list_shows_the_push_proxy_its_scope_its_role_and_how_to_bind_it(tmp_path):
    code, out = run("policy", "list", "--registry", "loaded", "-o", "json", path=tmp_path / "m.yaml")
    assert code == 0
    data = json.loads(out)
    assert data["pushProxy"] == {
        "namespace": "meshreg-push-loaded", "serviceAccount": "meshreg-push-loaded/push-proxy",
        "principal": "cluster.local/ns/meshreg-push-loaded/sa/push-proxy", "repositories": ["airgap/"],
        "port": 5001, "role": "meshreg-connect", "connect": " --registry loaded",
        "grant": "kubectl -n meshreg-push-loaded create rolebinding NAME --role=meshreg-connect --user=USER "
                 "(or --group)"}
    assert [w["serviceAccount"] for w in data["writers"]] == ["meshreg-push-loaded/push-proxy"]


def test_policy_list_text_marks_the_push_proxy_among_the_writers(tmp_path):
    code, out = run("policy", "list", path=tmp_path / "m.yaml")
    assert code == 0
    assert "meshreg-push-images/push-proxy dev/  (cluster.local/ns/meshreg-push-images/sa/push-proxy)  " \
           "[push proxy]" in out
    assert "kubectl -n meshreg-push-images create rolebinding NAME --role=meshreg-connect" in out
