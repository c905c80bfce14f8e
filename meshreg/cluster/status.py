"""`meshreg status`: what is deployed, whether it matches the config, whether it is ready, and where to push/pull."""

from __future__ import annotations

import yaml

from meshreg.cluster import ambient, enforcement, runtimeconfig, selectors
from meshreg.cluster import gc as gcs
from meshreg.cluster import live as lives
from meshreg.cluster.apply import ordered
from meshreg.cluster.enforcement import has_sidecar
from meshreg.cluster.wait import crash_causes, pod_causes, rollout
from meshreg.errors import ClusterError
from meshreg.render import gc as gc_objects, hosting, labels

HOSTING = (hosting.NAMESPACE, "local-registry-hosting")


def drifted(rendered, live) -> list[str]:
    """Dotted paths where the live object differs from what meshreg renders (rendered fields as a subset)."""
    if rendered in ({}, []) and live is None:  # an empty map or list the server did not keep
        return []
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            return [""]
        return [f".{k}{sub}" for k, v in rendered.items() for sub in drifted(v, live.get(k))]
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [""]
        return [f"[{i}]{sub}" for i, (r, v) in enumerate(zip(rendered, live)) for sub in drifted(r, v)]
    return [] if _same_scalar(rendered, live) else [""]


def _same_scalar(rendered, live) -> bool:
    if rendered == live or str(rendered) == str(live):
        return True
    # The server stores quantities in canonical form ("0.5" becomes "500m", "1024Mi" becomes "1Gi").
    from kubernetes.utils import parse_quantity
    try:
        return isinstance(rendered, str) and isinstance(live, str) and parse_quantity(rendered) == parse_quantity(live)
    except ValueError:
        return False


def report(*, cluster, cfg, manifests, live=None) -> dict:
    """Everything `status` prints, as data (also the -o json shape). `live`: what lives.read found, if read already;
    every object is read once, whichever part of the report looks at it."""
    objs = ordered(manifests)
    live = live or lives.read(manifests=objs, cluster=cluster)
    cluster = lives.Snapshot(cluster, live)
    objects = []
    for obj in objs:
        found = live.of(obj)
        fields = drifted(obj, found) if found is not None else []
        entry = {"kind": obj["kind"], "namespace": obj["metadata"].get("namespace"),
                 "name": obj["metadata"]["name"], "state": "missing" if found is None else
                 ("drifted" if fields else "present")}
        if fields:
            entry["fields"] = fields[:5]
        objects.append(entry)
    published = _published(cluster, cfg)
    registries = [_registry(cluster, cfg, reg, published.get(reg.name)) for reg in cfg.registries]
    default = next(r for r in registries if r["default"])
    # "registry" is the default registry's entry, for scripts that only ever have one.
    out = {"server": cluster.server, "objects": objects, "registries": registries,
           "registry": default, "nodeProxy": _node_proxy(cluster, cfg),
           "runtimeConfig": runtimeconfig.report(cluster=cluster, cfg=cfg),
           "pushProxies": [_push_proxy(cluster, reg) for reg in cfg.registries if reg.push_proxy]}
    waypoint = ambient.status(cluster=cluster, namespace=cfg.namespace, manifests=manifests)
    if waypoint is not None:
        out["waypoint"] = waypoint
    out["healthy"] = healthy(out)
    return out


def healthy(r: dict) -> bool:
    """Every object present and as rendered, registry pods ready with a sidecar (in ambient mode: captured by
    ztunnel, and the waypoint programmed and ready), node proxy ready everywhere."""
    proxy, waypoint = r["nodeProxy"], r.get("waypoint")
    return (all(o["state"] == "present" for o in r["objects"])
            and all(registry_healthy(reg) for reg in r["registries"])
            and (not proxy["enabled"] or proxy["ready"])
            and (not r["runtimeConfig"]["enabled"] or r["runtimeConfig"]["ready"])
            and (not waypoint or (waypoint["programmed"] and waypoint["ready"]))
            and all(p["ready"] for p in r.get("pushProxies", [])))


def meshed(reg: dict) -> tuple[int, str]:
    """How many of a registry entry's pods are in the mesh, and how: with the sidecar, or in ambient mode (where
    the entry has `inAmbient`) captured by ztunnel."""
    if "inAmbient" in reg:
        return reg["inAmbient"], "captured by ztunnel"
    return reg["withSidecar"], "with the istio-proxy sidecar"


def registry_healthy(reg: dict) -> bool:
    """A registry entry of the report: ready, with pods, every one of them in the mesh."""
    return reg["ready"] and reg["pods"] > 0 and meshed(reg)[0] == reg["pods"]


def _registry(cluster, cfg, reg, addresses) -> dict:
    deployment = cluster.get("apps/v1", "Deployment", reg.name, namespace=cfg.namespace)
    done, text = rollout(deployment)
    pods = cluster.list("v1", "Pod", namespace=cfg.namespace, label_selector=selectors.of(deployment)) \
        if selectors.of(deployment) else []
    with_sidecar = sum(1 for p in pods if has_sidecar(p))
    # Why it is not ready, from the pods (and the last log lines of crashing containers): read only when needed.
    problems = [] if done else list(dict.fromkeys(c for p in pods for c in pod_causes(p) + crash_causes(cluster, p)))
    mesh = {"inAmbient": sum(1 for p in pods if enforcement.captured(p))} if cfg.mesh == "ambient" else {}
    return {"name": reg.name, "role": reg.role, "default": reg.default, "ready": done, "replicas": text,
            "pods": len(pods), "withSidecar": with_sidecar, **mesh, "mtls": _mtls(cluster, cfg, reg.name),
            "writers": [w.service_account for w in cfg.writers_of(reg)],
            "endpoints": _ready_endpoints(cluster, cfg, reg.name), "addresses": addresses, "problems": problems,
            **_gc(cluster, cfg, reg)}


def _gc(cluster, cfg, reg) -> dict:
    """The gc CronJob's last run, and the volume's usage where the kubelet's stats reach the API."""
    out: dict = {"storage": "s3" if reg.storage.s3 else "volume"}
    if reg.gc:
        out["gc"] = gcs.last_run(cluster=cluster, namespace=cfg.namespace, cron_name=gc_objects.gc_name(reg),
                                 selector=labels.selector({labels.REGISTRY: reg.name, labels.COMPONENT: "gc"}))
    if not reg.storage.s3:
        try:
            out["volume"] = gcs.volume_usage(cluster=cluster, namespace=cfg.namespace, claim=f"{reg.name}-data",
                                             selector=labels.selector(labels.registry_pods(cfg, reg)))
        except ClusterError:
            out["volume"] = None
    return out


def _ready_endpoints(cluster, cfg, service: str) -> int:
    """Ready endpoints behind a registry's Service: the hostFromClusterNetwork path, as far as the API shows it."""
    try:
        slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", namespace=cfg.namespace,
                              label_selector=f"kubernetes.io/service-name={service}")
    except ClusterError:
        return -1
    return sum(1 for s in slices for e in (s.get("endpoints") or [])
               if (e.get("conditions") or {}).get("ready", True))


def _node_proxy(cluster, cfg) -> dict:
    if not cfg.node_proxy.enabled:
        return {"enabled": False, "ready": True, "nodes": "disabled"}
    done, text = rollout(cluster.get("apps/v1", "DaemonSet", "node-proxy", namespace=cfg.namespace))
    return {"enabled": True, "ready": done, "nodes": text}


def _push_proxy(cluster, reg) -> dict:
    proxy = reg.push_proxy
    done, text = rollout(cluster.get("apps/v1", "Deployment", "push-proxy", namespace=proxy.namespace))
    return {"registry": reg.name, "namespace": proxy.namespace, "ready": done, "replicas": text,
            "repositories": list(proxy.repositories), "port": proxy.port}


def _mtls(cluster, cfg, name: str) -> dict:
    """The registry's PeerAuthentication mode, and the namespace- and mesh-wide ones (Istio's default: PERMISSIVE)."""
    def mode(pa):
        return ((pa or {}).get("spec", {}).get("mtls") or {}).get("mode") or "UNSET"

    workload = cluster.get("security.istio.io/v1", "PeerAuthentication", name, namespace=cfg.namespace)
    wide = {}
    for scope, ns in (("namespace", cfg.namespace), ("mesh", "istio-system")):
        try:
            found = [p for p in cluster.list("security.istio.io/v1", "PeerAuthentication", namespace=ns)
                     if not (p.get("spec") or {}).get("selector")]
        except ClusterError:  # e.g. no read access to istio-system: say so rather than fail the whole status
            wide[scope] = "unknown"
            continue
        wide[scope] = mode(found[0]) if found else None
    chain = [mode(workload) if workload else None, wide["namespace"], wide["mesh"]]
    effective = next((m for m in chain if m and m != "UNSET"), "PERMISSIVE")
    return {"effective": effective, "workload": chain[0], "namespace": wide["namespace"], "mesh": wide["mesh"]}


def _published(cluster, cfg) -> dict:
    """Registry name -> its live published addresses: the KEP-1755 map for the default, the index for all."""
    out = {}
    publish = cfg.local_registry_hosting.publish  # False: local-registry-hosting is another instance's
    if len(cfg.registries) > 1 or not publish:
        index = cluster.get("v1", "ConfigMap", hosting.index_name(cfg), namespace=HOSTING[0])
        for name, text in ((index or {}).get("data") or {}).items():
            out[name] = _parse(text, f"{name} in {HOSTING[0]}/{hosting.index_name(cfg)}")
    if publish:
        live = cluster.get("v1", "ConfigMap", HOSTING[1], namespace=HOSTING[0])
        text = ((live or {}).get("data") or {}).get("localRegistryHosting.v1")
        out[cfg.registry.name] = _parse(text, "localRegistryHosting.v1") if text else None
    return out


def _parse(text: str, what: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"error": f"{what} is not valid YAML"}
    return data if isinstance(data, dict) else {"error": f"{what} is not a mapping"}


def text(r: dict) -> str:
    """The human-readable form of a report."""
    lines = [f"cluster: {r['server']}"]
    for o in r["objects"]:
        where = f"{o['namespace']}/" if o["namespace"] else ""
        extra = f" ({', '.join(o['fields'])})" if o.get("fields") else ""
        lines.append(f"  {o['state']:<8} {o['kind']} {where}{o['name']}{extra}")
    for reg in r["registries"]:
        lines += _registry_lines(reg, several=len(r["registries"]) > 1)
    proxy = r["nodeProxy"]
    lines.append("node proxy: " + ("disabled" if not proxy["enabled"] else
                                   f"{'ready' if proxy['ready'] else 'NOT ready'} ({proxy['nodes']})"))
    if r.get("waypoint"):
        w = r["waypoint"]
        lines.append(f"waypoint {w['name']}: {'programmed' if w['programmed'] else 'NOT programmed'} ({w['message']}), "
                     f"{'ready' if w['ready'] else 'NOT ready'} ({w['replicas']})")
    lines += runtimeconfig.lines(r["runtimeConfig"])
    for p in r.get("pushProxies", []):
        lines.append(f"push proxy ({p['registry']}): {'ready' if p['ready'] else 'NOT ready'} ({p['replicas']}) in "
                     f"namespace {p['namespace']}, writes {', '.join(p['repositories'])}; push with meshreg "
                     f"connect (local port {p['port']} unless --port says otherwise)")
    lines.append("healthy" if r["healthy"] else "NOT healthy")
    return "\n".join(lines)


def _registry_lines(reg: dict, *, several: bool) -> list[str]:
    name = f"registry {reg['name']} ({reg['role']}{', default' if reg['default'] else ''})" if several else "registry"
    mtls = reg["mtls"]
    pad = "  " if several else ""
    endpoints = {-1: "unknown (cannot list EndpointSlices)"}.get(reg["endpoints"], f"{reg['endpoints']} ready")
    nobody = "none (nobody can push" + ("; run meshreg policy grant NS/SA)" if reg["role"] == "images" else ")")
    addr = reg["addresses"] or {}
    meshed = f"{reg['inAmbient']} of {reg['pods']} pods captured by ztunnel" if "inAmbient" in reg else \
        f"{reg['withSidecar']} of {reg['pods']} pods with the istio-proxy sidecar"
    return [
        f"{name}: {'ready' if reg['ready'] else 'NOT ready'} ({reg['replicas']}), {meshed}",
        f"{pad}mTLS: {mtls['effective']} (registry: {mtls['workload'] or 'none'}, namespace: "
        f"{mtls['namespace'] or 'none'}, mesh-wide: {mtls['mesh'] or 'none'})",
        f"{pad}in-cluster path: Service endpoints {endpoints}",
        *(f"{pad}problem: {p}" for p in reg["problems"]),
        f"{pad}writers: " + (", ".join(reg["writers"]) or nobody),
        *_gc_lines(reg, pad),
        f"{pad}published: " + ("missing" if not addr else
                              ", ".join(f"{k}={v}" for k, v in addr.items() if k not in ("help", "role", "default"))),
    ]


def _gib(n) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _gc_lines(reg: dict, pad: str) -> list[str]:
    lines = []
    gc = reg.get("gc")
    if gc is not None:
        job = gc.get("lastJob")
        last = f"last Job {job['name']} {job['state']}" + (f" ({job['completed']})" if job.get("completed") else "") \
            if job else "never run"
        lines.append(f"{pad}gc: " + (f"{gc['schedule']}; {last}" if gc["deployed"] else "CronJob missing"))
    if reg.get("storage") == "volume":
        volume = reg.get("volume")
        lines.append(f"{pad}volume: " + (f"{_gib(volume['usedBytes'])} used of {_gib(volume['capacityBytes'])}"
                                         if volume and volume.get("usedBytes") is not None
                                         else "usage unknown (the kubelet's stats are not reachable through the API)"))
    return lines
