"""Discovery answers are kept on disk between commands where kubectl keeps them ($KUBECACHEDIR, default
~/.kube/cache, discovery/HOST_PORT/GROUP/VERSION/serverresources.json) and trusted as long (6 hours)."""

from __future__ import annotations

import json
import os
import pathlib
import time

from meshreg.cluster import client as clusters
from meshreg.cluster import discovery
from support.apiserver import write_kubeconfig

SECURITY = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "security.istio.io/v1",
            "resources": [{"name": "authorizationpolicies", "namespaced": True, "kind": "AuthorizationPolicy"},
                          {"name": "authorizationpolicies/status", "namespaced": True, "kind": "AuthorizationPolicy"}]}


def connect(api, tmp_path: pathlib.Path) -> clusters.Cluster:
    """A fresh connection, as a new command makes."""
    url = f"http://127.0.0.1:{api.server_address[1]}"
    return clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", url))


def cached(api, api_version: str) -> pathlib.Path:
    """Where the discovery answer of `api_version` from this server is kept."""
    return discovery.directory(f"http://127.0.0.1:{api.server_address[1]}") / api_version / "serverresources.json"


def discoveries(api) -> list[str]:
    return [r["path"] for r in api.requests if r["path"].startswith("/apis/") and r["path"].count("/") == 3]


def test_the_cache_is_where_kubectl_keeps_it_and_honours_kubecachedir(tmp_path):
    assert discovery.directory("https://127.0.0.1:6443", environ={"KUBECACHEDIR": str(tmp_path)}) == \
        tmp_path / "discovery" / "127.0.0.1_6443"
    assert discovery.directory("https://api.example.com:443/prefix", environ={"HOME": "/h"}) == \
        pathlib.Path.home() / ".kube" / "cache" / "discovery" / "api.example.com_443/prefix"


def test_a_second_command_asks_no_discovery_the_first_one_had(api, tmp_path):
    api.routes[("GET", "/apis/security.istio.io/v1")] = (200, SECURITY)
    assert connect(api, tmp_path).served("security.istio.io/v1") == {"authorizationpolicies"}
    assert connect(api, tmp_path).served("security.istio.io/v1") == {"authorizationpolicies"}
    assert discoveries(api) == ["/apis/security.istio.io/v1"]
    kept = cached(api, "security.istio.io/v1")
    assert json.loads(kept.read_text()) == SECURITY  # the server's answer, as kubectl writes it


def test_an_answer_older_than_six_hours_is_asked_again(api, tmp_path):
    api.routes[("GET", "/apis/security.istio.io/v1")] = (200, SECURITY)
    connect(api, tmp_path).served("security.istio.io/v1")
    kept = cached(api, "security.istio.io/v1")
    old = time.time() - discovery.TTL - 60
    os.utime(kept, (old, old))
    connect(api, tmp_path).served("security.istio.io/v1")
    assert discoveries(api) == ["/apis/security.istio.io/v1"] * 2


def test_a_group_the_server_does_not_serve_is_asked_every_time(api, tmp_path):
    # no route: the tiny server answers 404, as for a group whose CRDs are not installed (yet)
    assert connect(api, tmp_path).served("gateway.networking.k8s.io/v1") == set()
    api.routes[("GET", "/apis/gateway.networking.k8s.io/v1")] = (200, {
        "groupVersion": "gateway.networking.k8s.io/v1", "resources": [{"name": "gateways"}]})
    assert connect(api, tmp_path).served("gateway.networking.k8s.io/v1") == {"gateways"}


def test_what_kubectl_cached_answers_meshreg(api, tmp_path):
    kept = cached(api, "security.istio.io/v1")
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps(SECURITY))
    assert connect(api, tmp_path).served("security.istio.io/v1") == {"authorizationpolicies"}
    assert discoveries(api) == []


def test_a_damaged_file_is_a_miss_and_is_replaced(api, tmp_path):
    api.routes[("GET", "/apis/security.istio.io/v1")] = (200, SECURITY)
    kept = cached(api, "security.istio.io/v1")
    kept.parent.mkdir(parents=True)
    kept.write_text("{not json")
    assert connect(api, tmp_path).served("security.istio.io/v1") == {"authorizationpolicies"}
    assert json.loads(kept.read_text()) == SECURITY
