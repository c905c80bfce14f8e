"""The runtime config in a live cluster: its DaemonSet's rollout, the nodes whose runtime needs it, and waiting for its
pods to remove their files when it is deleted."""

from __future__ import annotations

import time

from meshreg import runtimes
from meshreg.cluster.wait import rollout
from meshreg.errors import ClusterError
from meshreg.render.runtimeconfig import NAME

WORKLOAD = ("apps/v1", "DaemonSet", NAME)
SETTING = "spec.nodeProxy.runtimeConfig"


def report(*, cluster, cfg) -> dict:
    """Whether the runtime config is enabled and rolled out, and each node's runtime with meshreg's judgement of it."""
    rc = cfg.node_proxy.runtime_config
    out: dict = {"enabled": rc.enabled, "directories": dict(rc.directories)}
    if rc.enabled:
        done, text = rollout(cluster.get(*WORKLOAD, namespace=cfg.namespace))
        out.update(ready=done, nodes=text)
    try:
        nodes = cluster.list("v1", "Node")
    except ClusterError as e:  # nodes are cluster-scoped: a namespaced user may not list them
        out["runtimes"] = f"unknown ({e})"
        return out
    out["runtimes"] = [_node(node, covered=set(out["directories"])) for node in nodes]
    return out


def _node(node: dict, *, covered: set) -> dict:
    reported = ((node.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", "")
    verdict = runtimes.judge(reported)
    return {"node": node["metadata"]["name"], "containerRuntimeVersion": reported, "needed": verdict.needed,
            "setting": verdict.setting, "setUp": verdict.setting in covered, "k3s": verdict.k3s,
            "reason": verdict.reason}


def lines(r: dict) -> list[str]:
    """The human-readable form: the DaemonSet, then each node that needs the runtime config and does not have it."""
    where = ", ".join(f"{runtime} {directory}" for runtime, directory in r["directories"].items())
    head = (f"runtime config: {'ready' if r['ready'] else 'NOT ready'} ({r['nodes']}), writing {where}"
            if r["enabled"] else "runtime config: disabled")
    out = [head]
    if isinstance(r["runtimes"], str):
        return out + [f"  node runtimes: {r['runtimes']}"]
    for n in r["runtimes"]:
        if n["needed"] is None:
            out.append(f"  node {n['node']}: {n['containerRuntimeVersion'] or 'no runtime reported'}: {n['reason']}")
        elif n["needed"] and not n["setUp"]:
            fix = "registries.yaml (k3s/RKE2)" if n["k3s"] else f"{SETTING}.{n['setting']}"
            out.append(f"  node {n['node']}: {n['containerRuntimeVersion']} needs it ({fix}): {n['reason']}")
    return out


def after_down(*, cluster, cfg, outcomes, timeout: float = 60.0) -> str | None:
    """What to tell the user once `down` has deleted the runtime config's DaemonSet (None if it did not)."""
    deleted = any((o.kind, o.namespace, o.name) == (WORKLOAD[1], cfg.namespace, NAME) and o.action == "deleted"
                  for o in outcomes)
    if not deleted:
        return None
    problem = wait_removed(cluster=cluster, cfg=cfg, timeout=timeout)
    return f"warning: {problem}" if problem else "runtime config: every pod removed its files from its node"


def wait_removed(*, cluster, cfg, timeout: float = 60.0, interval: float = 2.0, clock=time.monotonic,
                 sleep=time.sleep) -> str | None:
    """After `down` deleted the DaemonSet (foreground: it stays until its pods are gone, and each pod removes its
    files as it stops), wait for it to be gone. None when gone; otherwise what to tell the user."""
    start = clock()
    while cluster.get(*WORKLOAD, namespace=cfg.namespace) is not None:
        if clock() - start >= timeout:
            return (f"DaemonSet {cfg.namespace}/{NAME} still has pods after {timeout:.0f}s; each removes its files "
                    "as it stops. A node that is down keeps them: see docs/node-runtimes.md (removal)")
        sleep(interval)
    return None
