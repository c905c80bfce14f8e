"""`meshreg up`, `down` and `status` with spec.ingress, on the fake cluster: the gateway's namespace, checks before
any write, pruning there when the ingress changes or goes, and no Secret listing for anyone without an ingress."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support.fakes import connected
from support.ingress_configs import CLIENTS, ingress_text, load

GATEWAY_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {
    "name": "istio-ingressgateway-1", "namespace": "istio-system", "labels": {"istio": "ingressgateway"}}}
SERVER_CERT = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-tls", "namespace": "istio-system"},
               "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
INGRESS_OBJECTS = [("Secret", "registry-tls-cacert"), ("RequestAuthentication", "meshreg-dev-ingress"),
                   ("AuthorizationPolicy", "meshreg-dev-ingress-deny"), ("Gateway", "meshreg-dev-ingress"),
                   ("VirtualService", "meshreg-dev-ingress")]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return connected(monkeypatch)


@pytest.fixture
def conf(tmp_path):
    load(tmp_path)  # writes meshreg.yaml and its CA
    return tmp_path / "meshreg.yaml"


def run(*args):
    return CliRunner().invoke(main, list(args))


def in_gateway_namespace(fake) -> list[tuple[str, str]]:
    return [(k[1], k[3]) for k in fake.objects if k[2] == "istio-system"
            and fake.objects[k]["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "meshreg"]


def test_up_applies_the_ingress_into_the_gateway_namespace_after_the_registry(fake, conf):
    fake.put(GATEWAY_POD), fake.put(SERVER_CERT)
    result = run("up", "-q", "-c", str(conf))
    assert result.exit_code == 0, result.output
    assert sorted(in_gateway_namespace(fake)) == sorted(INGRESS_OBJECTS)
    applied = [(k[1], k[3]) for verb, k, opts in fake.requests if verb == "apply" and not opts["dry_run"]]
    ingress = [applied.index(o) for o in INGRESS_OBJECTS]
    assert ingress == sorted(ingress)  # the policies before the route that needs them
    assert min(ingress) > applied.index(("AuthorizationPolicy", "registry-allow-writes"))
    annotations = fake.get("v1", "Namespace", "meshreg")["metadata"]["annotations"]
    assert annotations["meshreg.dev/ingress-namespace"] == "istio-system"
    assert "warning: ingress" not in result.output  # the gateway, its pods and its certificate are in place
    assert "push (ingress clients):    registry.example.com (clients: loader, team-a-ci, bot, app-ci)" in result.output


def test_up_warns_when_the_gateway_pods_or_the_server_certificate_are_missing(fake, conf):
    result = run("up", "-q", "-c", str(conf))
    assert result.exit_code == 0, result.output
    assert "warning: ingress: no pods labelled istio=ingressgateway in istio-system" in result.output
    assert "warning: ingress: Secret istio-system/registry-tls (spec.ingress.credentialName" in result.output


def test_up_stops_before_any_write_when_the_gateway_namespace_does_not_exist(fake, tmp_path):
    cfg_text = ingress_text(clients=CLIENTS, extra="    gateway: {namespace: istio-ingress}\n")
    load(tmp_path, cfg_text)
    result = run("up", "-q", "-c", str(tmp_path / "meshreg.yaml"))
    assert result.exit_code == 1 and "namespace istio-ingress does not exist" in result.output
    assert [r for r in fake.requests if r[0] in ("apply", "delete") and not r[2].get("dry_run")] == []


def test_up_stops_before_any_write_without_the_request_authentication_crd(fake, conf):
    fake.served_groups["security.istio.io/v1"].discard("requestauthentications")
    result = run("up", "-q", "-c", str(conf))
    assert result.exit_code == 1 and "does not serve RequestAuthentication" in result.output
    assert [r for r in fake.requests if r[0] == "apply" and not r[2]["dry_run"]] == []


def test_up_prunes_what_the_ingress_no_longer_renders(fake, conf, tmp_path):
    run("up", "-q", "-c", str(conf))
    only_certificates = "      - {name: loader, method: mtls, repositories: [images/]}\n"
    conf.write_text(ingress_text(clients=only_certificates))
    result = run("up", "-q", "-c", str(conf))
    assert result.exit_code == 0, result.output
    assert "pruned      RequestAuthentication istio-system/meshreg-dev-ingress" in result.output
    assert ("RequestAuthentication", "meshreg-dev-ingress") not in in_gateway_namespace(fake)


def test_removing_the_ingress_prunes_it_from_the_gateway_namespace_it_was_in(fake, conf):
    run("up", "-q", "-c", str(conf))
    conf.write_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n"
                    "  namespace: meshreg\n")
    result = run("up", "-q", "-c", str(conf))
    assert result.exit_code == 0, result.output
    assert in_gateway_namespace(fake) == []
    assert "meshreg.dev/ingress-namespace" not in fake.get("v1", "Namespace", "meshreg")["metadata"]["annotations"]
    assert fake.get("v1", "Secret", "registry-tls", namespace="istio-system") is None  # never ours, never applied


def test_pruning_leaves_secrets_it_does_not_own(fake, conf):
    fake.put(SERVER_CERT)
    run("up", "-q", "-c", str(conf))
    conf.write_text(ingress_text(clients="      []\n"))
    run("up", "-q", "-c", str(conf))
    assert fake.get("v1", "Secret", "registry-tls", namespace="istio-system") is not None
    assert fake.get("v1", "Secret", "registry-tls-cacert", namespace="istio-system") is None


def test_up_without_an_ingress_never_lists_secrets(fake):
    assert run("up", "-q").exit_code == 0
    assert [r for r in fake.requests if r[0] == "list" and r[1][1] == "Secret"] == []


def test_down_removes_the_ingress_and_status_lists_it(fake, conf):
    fake.put(GATEWAY_POD), fake.put(SERVER_CERT)
    run("up", "-q", "-c", str(conf))
    status = run("status", "-o", "json", "-c", str(conf))
    objects = {(o["kind"], o["name"]): o["state"] for o in __import__("json").loads(status.output)["objects"]}
    assert all(objects[k] == "present" for k in INGRESS_OBJECTS)
    assert run("down", "-c", str(conf)).exit_code == 0
    assert in_gateway_namespace(fake) == []
    assert fake.get("v1", "Secret", "registry-tls", namespace="istio-system") is not None


def test_revoke_apply_updates_only_the_ca_secret(fake, conf):
    run("certs", "init", "-c", str(conf)) if not (conf.parent / "ingress-ca").exists() else None
    run("up", "-q", "-c", str(conf))
    assert run("certs", "issue", "loader", "-c", str(conf)).exit_code == 0
    before = len(fake.requests)
    result = run("certs", "revoke", "loader", "--apply", "-c", str(conf))
    assert result.exit_code == 0, result.output
    applied = [r[1] for r in fake.requests[before:] if r[0] == "apply" and not r[2]["dry_run"]]
    assert applied == [("v1", "Secret", "istio-system", "registry-tls-cacert")]
    assert "changed: Secret istio-system/registry-tls-cacert" in result.output
