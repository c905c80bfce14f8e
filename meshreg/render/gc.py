"""A registry's gc CronJob: retention through the mesh, then distribution's garbage-collect while no registry pod
accepts writes, and everything the Job needs (its account, the right to switch the registry read-only, its code).

The Job's pod has two containers. `gc` (a plain Python image) runs meshreg's own code from meshreg/gcjob and the
retention model it imports (meshreg/retention.py), shipped in a ConfigMap byte for byte and mounted in the source
tree's layout, so the same imports work in both places: retention, the read-only switch, and the result line
`meshreg gc` reads. `garbage-collect` (the registry's image) runs distribution's garbage-collect when `gc` says so
(see collect.sh).
"""

from __future__ import annotations

import json
from importlib import resources

from meshreg.config import Config, Registry
from meshreg.config.model import GC
from meshreg.objects import Labels, Object
from meshreg.render import objectstorage, podspec
from meshreg.render.labels import COMPONENT, INSTANCE, NAME, REGISTRY, common, metadata, registry_pods, sidecar
from meshreg.render.registry import DATA_DIR, RUN_AS

# The modules the Job runs, as paths under CODE_DIR laid out as in the source tree: meshreg's (standard library
# only) __init__, the retention model, and every module of meshreg.gcjob, so that a module added there is shipped too.
MODULES = ("meshreg/__init__.py", "meshreg/retention.py", *sorted(
    f"meshreg/gcjob/{p.name}" for p in resources.files("meshreg.gcjob").iterdir() if p.name.endswith(".py")))
CODE_DIR = "/opt/meshreg"  # on PYTHONPATH: the modules are mounted under it as meshreg/...
SHARED_DIR = "/run/meshreg-gc"
CONTAINER = "gc"  # the coordinator, whose log carries the result line


def gc_name(reg: Registry) -> str:
    return f"{reg.name}-gc"


def _gc(reg: Registry) -> GC:
    """The registry's gc settings: everything here is for a registry that has them."""
    assert reg.gc is not None, f"registry {reg.name} has no gc"
    return reg.gc


def _meta(cfg: Config, reg: Registry) -> Object:
    return metadata(cfg, gc_name(reg), extra={COMPONENT: "gc", REGISTRY: reg.name})


def gc_pods(cfg: Config, reg: Registry) -> Labels:
    """Labels of a registry's gc pods (never the registry's own: its Service and policies must not select them)."""
    return {INSTANCE: cfg.name, NAME: "registry-gc", REGISTRY: reg.name}


def objects(cfg: Config, reg: Registry) -> list[Object]:
    return [service_account(cfg, reg), role(cfg, reg), role_binding(cfg, reg), config_map(cfg, reg),
            cron_job(cfg, reg)]


def service_account(cfg: Config, reg: Registry) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(cfg, reg),
            "automountServiceAccountToken": False}


def role(cfg: Config, reg: Registry) -> Object:
    """Just enough to switch this one registry read-only and back, and watch it roll out."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(cfg, reg),
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [reg.name],
                       "verbs": ["get", "patch"]}]}


def role_binding(cfg: Config, reg: Registry) -> Object:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(cfg, reg),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": gc_name(reg)},
            "subjects": [{"kind": "ServiceAccount", "name": gc_name(reg), "namespace": cfg.namespace}]}


def plan(cfg: Config, reg: Registry) -> Object:
    """What the Job's code reads: where the registry is and what to do."""
    return {"registry": f"http://{cfg.service_host(reg)}",
            "namespace": cfg.namespace, "deployment": reg.name,
            "retention": reg.retention.as_json() if reg.retention else None,
            "deleteUntagged": _gc(reg).delete_untagged, "storage": "s3" if reg.storage.s3 else "filesystem",
            "rolloutTimeout": max(60, _gc(reg).timeout // 3)}


def key(module: str) -> str:
    """The ConfigMap key of a module path (keys cannot hold '/'): meshreg/gcjob/run.py -> meshreg.gcjob.run.py."""
    return module.replace("/", ".")


def _source(path: str) -> str:
    """A file of meshreg as installed, by its path in the source tree (meshreg/gcjob/run.py)."""
    found = resources.files("meshreg")
    for part in path.split("/")[1:]:
        found = found.joinpath(part)
    return found.read_text(encoding="utf-8")


def code() -> dict[str, str]:
    """The gc Job's code, as shipped: the modules of MODULES (by key) and the garbage-collect script."""
    return {**{key(m): _source(m) for m in MODULES}, "collect.sh": _source("meshreg/gcjob/collect.sh")}


def config_map(cfg: Config, reg: Registry) -> Object:
    data = {**code(), "plan.json": json.dumps(plan(cfg, reg), indent=2, sort_keys=True) + "\n"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cfg, reg), "data": data}


def _security() -> Object:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsGroup": RUN_AS, "runAsNonRoot": True, "runAsUser": RUN_AS}


def _mounts(*extra: Object) -> list[Object]:
    return [{"name": "code", "mountPath": CODE_DIR, "readOnly": True}, {"name": "shared", "mountPath": SHARED_DIR},
            *extra]


def coordinator(reg: Registry) -> Object:
    return {"name": CONTAINER, "image": _gc(reg).image, "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-m", "meshreg.gcjob"], "workingDir": CODE_DIR,
            "env": [{"name": "MESHREG_GC_PLAN", "value": f"{CODE_DIR}/plan.json"},
                    {"name": "MESHREG_GC_SHARED", "value": SHARED_DIR},
                    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONPATH", "value": CODE_DIR},
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            "securityContext": _security(), "volumeMounts": _mounts()}


def collector(reg: Registry) -> Object:
    """distribution's garbage-collect, with the registry's config and storage."""
    mounts = [{"name": "config", "mountPath": "/etc/docker/registry", "readOnly": True}]
    if not reg.storage.s3:
        mounts.append({"name": "data", "mountPath": DATA_DIR})
    out: Object = {"name": "garbage-collect", "image": reg.image, "imagePullPolicy": "IfNotPresent",
                   "command": ["sh", f"{CODE_DIR}/collect.sh"],
                   "env": [{"name": "MESHREG_GC_SHARED", "value": SHARED_DIR}],
                   "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
                   "securityContext": _security(), "volumeMounts": _mounts(*mounts)}
    if reg.storage.s3:
        out["env"] += [e for e in objectstorage.env(reg) if e["name"] != "REGISTRY_HTTP_SECRET"]
    return out


def _volumes(reg: Registry) -> list[Object]:
    items = [{"key": key(m), "path": m} for m in MODULES] + [
        {"key": k, "path": k} for k in ("collect.sh", "plan.json")]
    out = [{"name": "code", "configMap": {"name": gc_name(reg), "items": items}},
           {"name": "config", "configMap": {"name": f"{reg.name}-config"}},
           {"name": "shared", "emptyDir": {}}]
    if not reg.storage.s3:
        out.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{reg.name}-data"}})
    return out


def pod_template(cfg: Config, reg: Registry) -> Object:
    spec: Object = {
        "serviceAccountName": gc_name(reg), "automountServiceAccountToken": True, "restartPolicy": "Never",
        "enableServiceLinks": False,
        "securityContext": {"fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [coordinator(reg), collector(reg)], "volumes": _volumes(reg), **podspec.pull_secrets(cfg)}
    # The ReadWriteOnce volume is attached where the registry runs: go there.
    follow = None if reg.storage.s3 else {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": registry_pods(cfg, reg)}, "topologyKey": "kubernetes.io/hostname"}]}}
    spec.update(podspec.placement(_gc(reg).scheduling, own=follow))
    return {"metadata": {"labels": {**common(cfg), COMPONENT: "gc", **gc_pods(cfg, reg), **sidecar(cfg)},
                         "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER,
                                         "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'}},
            "spec": spec}


def cron_job(cfg: Config, reg: Registry) -> Object:
    gc = _gc(reg)
    spec: Object = {"schedule": gc.schedule, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 3600,
                  "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                  "jobTemplate": {"metadata": {"labels": {**common(cfg), COMPONENT: "gc", REGISTRY: reg.name}},
                                  "spec": {"backoffLimit": 0, "activeDeadlineSeconds": gc.timeout,
                                           "template": pod_template(cfg, reg)}}}
    if gc.time_zone:
        spec["timeZone"] = gc.time_zone
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(cfg, reg), "spec": spec}
