"""Check 10, after `up`: every object present and as rendered (the `status` report), pods ready with their
sidecar, and the node proxy's Gateway has a server on each registry port, reached through its Service."""

from __future__ import annotations

from meshreg.cluster import live as lives
from meshreg.cluster import status as statuses
from meshreg.doctor import fail, ok, some, warn
from meshreg.cluster.wait import diagnose
from meshreg.render import labels

CHECK = "deployed"


def check(facts) -> list:
    cfg = facts.cfg
    report = statuses.report(cluster=facts.cluster, cfg=cfg, manifests=facts.manifests, live=facts.live())
    objects = report["objects"]
    # kube-public is shared with other instances: only the instance's own namespace says whether it is deployed
    if all(o["state"] == "missing" for o in objects if o["namespace"] == cfg.namespace):
        return [warn(CHECK, f"meshreg ({cfg.name}) is not deployed on {facts.cluster.server}",
                     "meshreg up, then meshreg doctor and meshreg verify")]
    out = [_objects(objects)]
    for reg in report["registries"]:
        out.append(_registry(facts, reg))
    if cfg.node_proxy.enabled:
        out += _node_proxy(facts, report["nodeProxy"])
    return out


def _name(o: dict) -> str:
    return f"{o['kind']} {o['namespace'] + '/' if o['namespace'] else ''}{o['name']}"


def _objects(objects):
    bad = [o for o in objects if o["state"] != "present"]
    if not bad:
        return ok(CHECK, f"all {len(objects)} objects present and as rendered")
    text = some(f"{_name(o)} {o['state']}" + (f" ({', '.join(o['fields'])})" if o.get("fields") else "")
                for o in bad)
    return fail(CHECK, text, "meshreg up puts them back as rendered (meshreg status lists the fields)")


def _registry(facts, reg: dict):
    name, (inside, how) = f"registry {reg['name']}", statuses.meshed(reg)
    if statuses.registry_healthy(reg):
        return ok(CHECK, f"{name} ready ({reg['replicas']}), every pod {how}")
    causes = diagnose(cluster=facts.cluster, namespace=facts.cfg.namespace,
                      workloads=[("apps/v1", "Deployment", reg["name"])])
    short = how.replace("the istio-proxy sidecar", "the sidecar")
    return fail(CHECK, f"{name} not ready ({reg['replicas']}, {inside} of {reg['pods']} pods {short})"
                       + (f": {'; '.join(causes)}" if causes else ""),
                f"kubectl -n {facts.cfg.namespace} describe deployment {reg['name']}")


def _node_proxy(facts, proxy: dict) -> list:
    cfg, cluster = facts.cfg, lives.Snapshot(facts.cluster, facts.live())
    out = []
    if proxy["ready"]:
        out.append(ok(CHECK, f"node proxy ready ({proxy['nodes']})"))
    else:
        causes = diagnose(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "DaemonSet", "node-proxy")])
        out.append(fail(CHECK, f"node proxy not ready ({proxy['nodes']})" + (f": {'; '.join(causes)}" if causes
                                                                            else ""),
                        f"kubectl -n {cfg.namespace} describe daemonset node-proxy"))
    gateway = cluster.get("networking.istio.io/v1", "Gateway", "node-proxy", namespace=cfg.namespace) or {}
    service = cluster.get("v1", "Service", "node-proxy", namespace=cfg.namespace) or {}
    served = {s.get("port", {}).get("number") for s in (gateway.get("spec") or {}).get("servers") or []}
    targets = {p.get("port"): p.get("targetPort") for p in (service.get("spec") or {}).get("ports") or []}
    selector = labels.selector(labels.node_proxy_pods(cfg))
    pods = cluster.list("v1", "Pod", namespace=cfg.namespace, label_selector=selector)
    wrong = [r.port for r in cfg.registries if r.port not in served or targets.get(r.port) != r.port]
    if wrong or not pods:
        return out + [fail(CHECK, f"Gateway node-proxy has no server reached through Service node-proxy on port(s) "
                                  f"{', '.join(map(str, wrong))}" if wrong else
                           "Gateway node-proxy selects no pod", "meshreg up re-applies the Gateway and Service")]
    return out + [ok(CHECK, f"Gateway node-proxy serves port(s) {', '.join(str(r.port) for r in cfg.registries)} "
                            f"on {len(pods)} node-proxy pod(s)")]
