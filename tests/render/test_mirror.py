"""A mirror's path to its upstream: through its own sidecar, which answers (503) when the upstream cannot."""

from __future__ import annotations

import pytest
import yaml

from meshreg import config
from meshreg.errors import ConfigError
from support.configs import minimal, rendered

MIRROR = """\
  namespace: regs
  registries:
    - name: images
      port: 5000
      default: true
    - name: hub
      role: mirror
      port: 5002
      mirror: {upstream: "https://registry-1.docker.io", credentialsSecret: hub-creds,
               extraHosts: [auth.docker.io, production.cloudflare.docker.com]}
"""


def objects(spec: str) -> dict:
    return rendered(minimal(spec))


def test_the_mirror_sends_upstream_requests_to_a_name_cluster_dns_always_resolves():
    objs = objects(MIRROR)
    remote = yaml.safe_load(objs[("ConfigMap", "hub-config")]["data"]["config.yml"])["proxy"]["remoteurl"]
    assert remote == "http://hub-upstream.regs.svc.cluster.local"
    alias = objs[("Service", "hub-upstream")]["spec"]
    assert "selector" not in alias  # no endpoints: only the sidecar's route for this host is ever used
    assert alias["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "appProtocol": "http"}]


def test_the_sidecar_routes_the_alias_to_the_upstream_with_its_own_host_name():
    vs = objects(MIRROR)[("VirtualService", "hub-upstream")]["spec"]
    assert vs["hosts"] == ["hub-upstream.regs.svc.cluster.local"] and vs["exportTo"] == ["."]
    [route] = vs["http"]
    assert route["rewrite"] == {"authority": "registry-1.docker.io"}
    assert route["route"] == [{"destination": {"host": "registry-1.docker.io", "port": {"number": 80}}}]
    assert "timeout" not in route


def test_the_sidecar_originates_tls_to_an_https_upstream_and_passes_the_registrys_own_tls_through():
    objs = objects(MIRROR)
    entry = objs[("ServiceEntry", "hub-upstream")]["spec"]
    assert entry["hosts"] == ["auth.docker.io", "production.cloudflare.docker.com", "registry-1.docker.io"]
    assert entry["ports"] == [{"number": 80, "name": "http-upstream", "protocol": "HTTP", "targetPort": 443},
                              {"number": 443, "name": "tls-443", "protocol": "TLS"}]
    rule = objs[("DestinationRule", "hub-upstream")]["spec"]
    assert rule["host"] == "registry-1.docker.io"
    assert rule["trafficPolicy"] == {"portLevelSettings": [
        {"port": {"number": 80}, "tls": {"mode": "SIMPLE", "sni": "registry-1.docker.io"}}]}


def test_an_upstream_on_another_port_keeps_its_port_in_the_host_header_and_the_entry():
    objs = objects(MIRROR.replace("https://registry-1.docker.io", "https://registry.example:5443"))
    assert objs[("VirtualService", "hub-upstream")]["spec"]["http"][0]["rewrite"] == {
        "authority": "registry.example:5443"}
    ports = objs[("ServiceEntry", "hub-upstream")]["spec"]["ports"]
    assert [(p["number"], p["protocol"], p.get("targetPort")) for p in ports] == [
        (80, "HTTP", 5443), (443, "TLS", None), (5443, "TLS", None)]


def test_a_plain_http_upstream_needs_no_tls_origination():
    objs = objects(MIRROR.replace("https://registry-1.docker.io", "http://registry.example:8080"))
    assert ("DestinationRule", "hub-upstream") not in objs
    assert objs[("ServiceEntry", "hub-upstream")]["spec"]["ports"][0]["targetPort"] == 8080
    assert objs[("VirtualService", "hub-upstream")]["spec"]["http"][0]["rewrite"] == {
        "authority": "registry.example:8080"}


def test_every_registry_pod_starts_after_its_sidecar_whose_drain_does_not_delay_a_restart():
    for (kind, _), obj in objects(MIRROR).items():
        if kind == "Deployment":
            annotations = obj["spec"]["template"]["metadata"]["annotations"]
            assert yaml.safe_load(annotations["proxy.istio.io/config"]) == {"holdApplicationUntilProxyStarts": True,
                                                                            "terminationDrainDuration": "1s"}


def test_only_a_mirror_has_an_upstream_path():
    kinds = {(k, n) for k, n in objects(MIRROR) if n.endswith("-upstream")}
    assert kinds == {(k, "hub-upstream") for k in ("Service", "ServiceEntry", "DestinationRule", "VirtualService")}


def test_a_registry_named_like_a_mirrors_upstream_service_is_refused():
    spec = MIRROR + "    - name: hub-upstream\n      port: 5003\n"
    with pytest.raises(ConfigError, match=r"m.yaml:\d+: spec.registries\[2\].name: 'hub-upstream' names the Service "
                                          r"through which spec.registries\[1\] reaches its upstream"):
        config.from_text(minimal(spec), name="m.yaml")
