"""What a push proxy renders: its own namespace and Role, a loopback-bound gateway, and the registry's policies."""

from __future__ import annotations

import pytest
import yaml

from meshreg import config
from meshreg.render import render
from support.configs import minimal
from support.validation import (
    MISSING_SCHEMAS,
    SCHEMAS,
    check_crd_object,
    is_custom,
    kubernetes_versions,
    validate_kubernetes,
)

SINGLE = minimal("  namespace: reg\n  pushProxy: {repositories: [dev/], port: 5000}\n"
                 "  writers: [{serviceAccount: builds/kaniko}]\n")
SEVERAL = minimal("""\
  namespace: reg
  istioRevision: 1-24
  registries:
    - {name: images, port: 5000, default: true, pushProxy: {repositories: [dev/, team-a/]}}
    - {name: loaded, port: 5001, role: readonly, publisher: reg-push-loaded/push-proxy,
       pushProxy: {repositories: ["*"]}}
""")
CONFIGS = {"single": SINGLE, "several": SEVERAL}


def rendered(text: str) -> list[dict]:
    return render(config.from_text(text, name="m.yaml"))


def one(objects, kind, name, namespace=None) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, [(o["kind"], o["metadata"]) for o in found]
    return found[0]


def test_the_default_render_has_no_push_proxy():
    assert not [o for o in render(config.DEFAULT) if "push-proxy" in o["metadata"]["name"]]


def test_every_push_proxy_object_lives_in_its_own_namespace():
    objects = rendered(SINGLE)
    mine = [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "push-proxy"]
    assert sorted(o["kind"] for o in mine) == sorted(["Namespace", "ServiceAccount", "Role", "Service", "Deployment",
                                                      "AuthorizationPolicy", "Gateway", "VirtualService"])
    assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in mine} == {"reg-push"}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_only_rbac_meshreg_renders_is_the_connect_role_in_each_push_proxy_namespace(name):
    objects = rendered(CONFIGS[name])
    rbac = [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io/")]
    registry_namespaces = {"reg"}
    proxies = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"} - registry_namespaces
    assert [o["kind"] for o in rbac] == ["Role"] * len(proxies)  # no ClusterRole, no RoleBinding
    assert {o["metadata"]["namespace"] for o in rbac} == proxies
    assert not {o["metadata"]["namespace"] for o in rbac} & registry_namespaces


def test_the_connect_role_grants_port_forward_and_the_reads_connect_needs_and_nothing_else():
    role = one(rendered(SINGLE), "Role", "meshreg-connect")
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              for v in rule["verbs"]}
    assert grants == {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
                      ("", "pods/portforward", "create"), ("", "pods/portforward", "get"),
                      ("", "services", "get"), ("apps", "deployments", "get")}
    assert not any("resourceNames" in rule or "*" in str(rule) for rule in role["rules"])


def test_the_namespace_is_injected_like_the_registrys_and_needs_only_baseline_pod_security():
    objects = rendered(SEVERAL)
    ns = one(objects, "Namespace", "reg-push-images")["metadata"]["labels"]
    assert ns["istio.io/rev"] == "1-24" and ns["pod-security.kubernetes.io/enforce"] == "baseline"
    pod = one(objects, "Deployment", "push-proxy", "reg-push-images")["spec"]["template"]
    assert pod["metadata"]["labels"]["istio.io/rev"] == "1-24"
    assert "hostPort" not in str(pod) and "privileged" not in str(pod)


def test_the_gateway_listens_on_loopback_where_the_service_and_the_pod_say():
    objects = rendered(SINGLE)
    [server] = one(objects, "Gateway", "push-proxy")["spec"]["servers"]
    [port] = one(objects, "Service", "push-proxy")["spec"]["ports"]
    [container] = one(objects, "Deployment", "push-proxy")["spec"]["template"]["spec"]["containers"]
    assert server["bind"] == "127.0.0.1" and server["port"]["protocol"] == "HTTP"
    assert server["port"]["number"] == port["port"] == port["targetPort"] == container["ports"][0]["containerPort"]
    assert container["image"] == "auto" and container["name"] == "istio-proxy"


def test_gateway_selector_matches_only_this_push_proxys_pods():
    objects = rendered(SEVERAL)
    for ns in ("reg-push-images", "reg-push-loaded"):
        selector = one(objects, "Gateway", "push-proxy", ns)["spec"]["selector"]
        pods = one(objects, "Deployment", "push-proxy", ns)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pods.items() and selector["meshreg.dev/push-proxy"] == ns


def test_the_route_goes_to_the_registry_service_without_a_timeout():
    vs = one(rendered(SEVERAL), "VirtualService", "push-proxy", "reg-push-loaded")["spec"]
    assert vs["gateways"] == ["push-proxy"] and vs["exportTo"] == ["."]
    [route] = vs["http"]
    assert "timeout" not in route
    assert route["route"] == [{"destination": {"host": "loaded.reg.svc.cluster.local", "port": {"number": 5000}}}]


def test_the_push_proxy_passes_reads_and_uploads_but_not_delete():
    policy = one(rendered(SINGLE), "AuthorizationPolicy", "push-proxy-allow")["spec"]
    assert policy["action"] == "ALLOW"
    [rule] = policy["rules"]
    assert "from" not in rule  # a port-forward has no mesh identity: RBAC decided who got here
    assert rule["to"] == [{"operation": {"methods": ["GET", "HEAD", "PATCH", "POST", "PUT"], "paths": ["/v2/*"]}}]


def test_the_registry_policies_admit_the_push_proxy_as_a_writer_of_its_prefixes_only():
    objects = rendered(SINGLE)
    principal = "cluster.local/ns/reg-push/sa/push-proxy"
    deny = one(objects, "AuthorizationPolicy", "registry-deny-writes")["spec"]["rules"]
    assert principal in deny[0]["from"][0]["source"]["notPrincipals"]
    scoped = [r for r in deny if r["from"][0]["source"].get("principals") == [principal]
              and "notPaths" in r["to"][0]["operation"]]
    assert scoped[0]["to"][0]["operation"]["notPaths"] == ["/v2/dev/*"]
    allow = one(objects, "AuthorizationPolicy", "registry-allow-writes")["spec"]["rules"]
    mine = [r for r in allow if r["from"][0]["source"]["principals"] == [principal]]
    assert mine[0]["to"][1]["operation"] == {"methods": ["PATCH", "POST", "PUT"], "paths": ["/v2/dev/*"]}


def test_the_published_host_is_where_connect_listens():
    objects = rendered(SINGLE.replace("port: 5000}", "port: 5100}"))
    hosting = yaml.safe_load(one(objects, "ConfigMap", "local-registry-hosting")["data"]["localRegistryHosting.v1"])
    assert hosting["host"] == "localhost:5100/dev" and hosting["hostFromContainerRuntime"] == "localhost:5000/dev"
    assert hosting["help"].endswith("From outside the cluster, run `meshreg connect` and push to localhost:5100/dev.")


def test_each_registry_publishes_its_own_push_proxy_address_and_an_explicit_host_wins():
    objects = rendered(SEVERAL.replace("  registries:", "  localRegistryHosting: {host: 'reg.example:443'}\n"
                                                      "  registries:"))
    index = one(objects, "ConfigMap", "meshreg-dev-registries")["data"]
    assert yaml.safe_load(index["loaded"])["host"] == "localhost:5001"
    assert yaml.safe_load(index["images"])["host"] == "reg.example:443"


VERSIONS = kubernetes_versions()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", CONFIGS)
def test_built_in_objects_pass_kubernetes_validate_strict(name, version):
    objects = [o for o in rendered(CONFIGS[name]) if not is_custom(o)]
    assert "Role" in {o["kind"] for o in objects}
    assert [e for o in objects for e in validate_kubernetes(o, version)] == []


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason=MISSING_SCHEMAS)
@pytest.mark.parametrize("name", CONFIGS)
def test_istio_objects_pass_their_crds_and_every_cel_rule_is_evaluated(name):
    results = [check_crd_object(o) for o in rendered(CONFIGS[name]) if is_custom(o)]
    assert [e for r in results for e in r.errors] == []
    assert [s for r in results for s in r.skipped] == [] and sum(len(r.evaluated) for r in results) > 0
