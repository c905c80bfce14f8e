"""`up` sends each read once: its checks and its read of what exists share one Snapshot (discovery, the namespace,
the namespace's collections), checked on the wire with the real client against a tiny local API server."""

from __future__ import annotations

from collections import Counter

from support.apiserver import istio_cluster, run_cli


def test_up_sends_no_read_twice(api, tmp_path, monkeypatch):
    istio_cluster(api)
    result = run_cli(api, tmp_path, monkeypatch, "up", "--dry-run")
    assert result.exit_code == 0, result.output
    reads = Counter((r["path"], tuple(sorted((k, tuple(v)) for k, v in r["query"].items())))
                    for r in api.requests if r["method"] == "GET")
    assert {read: n for read, n in reads.items() if n > 1} == {}
    paths = [path for path, _ in reads]
    assert "/api/v1/namespaces/meshreg" in paths  # read once, for the checks and for ownership alike
    assert "/apis/gateway.networking.k8s.io/v1" in paths  # discovery, asked by the checks and by prune's scope
    assert "/api/v1/namespaces/meshreg/persistentvolumeclaims/registry-data" not in paths  # the LIST answers it
