"""The requests the real kubernetes client sends for `status`'s reads, checked on a tiny local API server."""

from __future__ import annotations

from meshreg import config
from meshreg.status import gather


def test_the_runtime_config_report_reads_its_daemonset_and_lists_nodes_cluster_wide(api, cluster):
    node = {"metadata": {"name": "a"}, "status": {"nodeInfo": {"containerRuntimeVersion": "cri-o://1.28.1"}}}
    api.routes[("GET", "/api/v1/nodes")] = (200, {"kind": "NodeList", "items": [node]})
    text = "apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n" \
           "  nodeProxy: {runtimeConfig: {containerd: {enabled: true}}}\n"
    report = gather.runtime_config(cluster, config.from_text(text, name="m.yaml"))
    assert [r["path"] for r in api.requests if r["method"] == "GET"] == [
        "/apis/apps/v1/namespaces/meshreg/daemonsets/node-proxy-runtime-config", "/api/v1/nodes"]
    assert report.ready is False  # 404: not deployed
    assert report.runtimes[0].node == "a" and report.runtimes[0].needed is True
