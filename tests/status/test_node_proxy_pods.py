"""`status` explains an interval without the node proxy on a node: each pod's readiness and since when, why it is not
ready, and its replacement."""

from __future__ import annotations

from datetime import datetime, timezone

from meshreg.cli.output.status import node_proxy_lines
from meshreg.status.nodeproxy import notable, pod_state
from meshreg.status.report import NodeProxyState


def pod(name: str, *, ready: bool, since: str, created: str, restarts: int = 0, deleting: str | None = None,
        waiting: str | None = None) -> dict:
    meta = {"name": name, "creationTimestamp": created,
            **({"deletionTimestamp": deleting, "deletionGracePeriodSeconds": 30} if deleting else {})}
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {
        "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": since}],
        "containerStatuses": [{"name": "istio-proxy", "ready": ready, "restartCount": restarts, "state": state}]}}


NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def test_a_pod_replacing_a_terminating_one_shows_both_with_why_and_since_when():
    old = pod_state(pod("node-proxy-a", ready=True, since="2026-12-06T08:00:00Z", created="2026-12-06T08:00:00Z",
                        deleting="2026-12-06T09:58:00Z"))
    new = pod_state(pod("node-proxy-b", ready=False, since="2026-12-06T09:58:01Z", created="2026-12-06T09:58:01Z",
                        waiting="ContainerCreating"))
    lines = node_proxy_lines(NodeProxyState(enabled=True, ready=False, nodes="0/1 nodes", pods=(old, new)))
    assert lines == [
        "node proxy: NOT ready (0/1 nodes)",
        "  n1: NOT ready since 2026-12-06T09:57:30Z: terminating (deleted: the node has no node proxy until its "
        "replacement is ready) (pod node-proxy-a created 2026-12-06T08:00:00Z, 0 restarts)",
        "  n1: NOT ready since 2026-12-06T09:58:01Z: istio-proxy: ContainerCreating (pod node-proxy-b created "
        "2026-12-06T09:58:01Z, 0 restarts)"]


def test_a_pod_ready_for_long_says_nothing_and_one_ready_recently_says_since_when():
    settled = pod_state(pod("node-proxy-a", ready=True, since="2026-12-06T08:00:00Z", created="2026-12-06T08:00:00Z"))
    recent = pod_state(pod("node-proxy-b", ready=True, since="2026-12-06T09:50:00Z", created="2026-12-06T09:49:58Z"))
    assert notable((settled,), now=NOW) == []
    assert notable((recent,), now=NOW) == [recent]
    restarted = pod_state(pod("node-proxy-c", ready=True, since="2026-12-06T08:00:00Z",
                              created="2026-12-06T08:00:00Z", restarts=2))
    assert notable((restarted,), now=NOW) == [restarted]
