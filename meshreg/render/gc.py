"""A registry's gc CronJob: retention through the mesh, then distribution's garbage-collect while no registry pod
accepts writes, and everything the Job needs (its account, the right to switch the registry read-only, its code).

`gc` (a plain Python image) runs meshreg's own code from meshreg/gcjob and the retention model it imports
(meshreg/retention.py), shipped in a ConfigMap byte for byte and mounted in the source tree's layout, so the same
imports work in both places: retention, the read-only switch, and the result line `meshreg gc` reads. Beside it,
containers of the registry's own image run `registry garbage-collect` directly, no shell needed, each blocked on a
FIFO until `gc` hands it a configuration (meshreg/gcjob/collect.py); an init container makes the FIFOs.
"""

from __future__ import annotations

import json
import pkgutil

from meshreg import gcjob
from meshreg.config import Config, Registry
from meshreg.config.model import GC
from meshreg.objects import Labels, Object
from meshreg.render import podspec
from meshreg.render.labels import COMPONENT, INSTANCE, NAME, REGISTRY, common, metadata, registry_pods, sidecar
from meshreg.render.registry import DATA_DIR, RUN_AS

# The modules the Job runs, as paths under CODE_DIR laid out as in the source tree: meshreg's (standard library
# only) __init__, the retention model, and every module of meshreg.gcjob, so that a module added there is shipped too.
# (pkgutil reads package data as importlib.resources does, without importing what that needs: zipfile, tempfile...)
MODULES = ("meshreg/__init__.py", "meshreg/retention.py", *sorted(
    f"meshreg/gcjob/{name}.py" for name in ["__init__", *(m.name for m in pkgutil.iter_modules(gcjob.__path__))]))
CODE_DIR = "/opt/meshreg"  # on PYTHONPATH: the modules are mounted under it as meshreg/...
SHARED_DIR = "/run/meshreg-gc"
REGISTRY_CONFIG_DIR = "/etc/meshreg-gc/registry"  # the registry's ConfigMap, which gc hands to garbage-collect
CONTAINER = "gc"  # the coordinator, whose log carries the result line
# garbage-collect's containers, named as meshreg/gcjob/collect.py names them (not imported: it loads urllib)
PLAN, COLLECT, TAGGED = "garbage-collect-plan", "garbage-collect", "garbage-collect-tagged"
# The coordinator talks to the API server directly, not through its sidecar, so that it can still make the registry
# writable while the pod is being stopped (the sidecar drains and exits on the same SIGTERM).
API_PORT = "443"


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
    """Just enough to switch this one registry read-only and back and watch it roll out, and to follow its own
    pod's garbage-collect containers (their state and output; a Job's pod name is not known in advance)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(cfg, reg),
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [reg.name],
                       "verbs": ["get", "patch"]},
                      {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]}


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
            "rolloutTimeout": max(60, _gc(reg).timeout // 3), "collectors": collectors(reg),
            "registryConfig": f"{REGISTRY_CONFIG_DIR}/config.yml", "data": None if reg.storage.s3 else DATA_DIR}


def collectors(reg: Registry) -> list[str]:
    """The garbage-collect containers: a dry run, the configured run, and one that keeps untagged manifests."""
    return [PLAN, COLLECT, *([TAGGED] if _gc(reg).delete_untagged else [])]


def key(module: str) -> str:
    """The ConfigMap key of a module path (keys cannot hold '/'): meshreg/gcjob/run.py -> meshreg.gcjob.run.py."""
    return module.replace("/", ".")


def _source(path: str) -> str:
    """A file of meshreg as installed, by its path in the source tree (meshreg/gcjob/run.py)."""
    package, _, name = path.partition("/")
    return _data(package, name)


def _data(package: str, name: str) -> str:
    data = pkgutil.get_data(package, name)
    assert data is not None, f"{package} has no loader that reads files"  # every file system or zip import has one
    return data.decode("utf-8")


def code() -> dict[str, str]:
    """The gc Job's code, as shipped: the modules of MODULES (by key)."""
    return {key(m): _source(m) for m in MODULES}


def config_map(cfg: Config, reg: Registry) -> Object:
    data = {**code(), "plan.json": json.dumps(plan(cfg, reg), indent=2, sort_keys=True) + "\n"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cfg, reg), "data": data}


def _security() -> Object:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsGroup": RUN_AS, "runAsNonRoot": True, "runAsUser": RUN_AS}


def _mounts(*extra: Object) -> list[Object]:
    return [{"name": "code", "mountPath": CODE_DIR, "readOnly": True}, {"name": "shared", "mountPath": SHARED_DIR},
            *extra]


def _python(reg: Registry, name: str, command: list[str], *, env: list[Object], mounts: list[Object],
            resources: Object) -> Object:
    return {"name": name, "image": _gc(reg).image, "imagePullPolicy": "IfNotPresent", "command": command,
            "workingDir": CODE_DIR,
            "env": [{"name": "MESHREG_GC_PLAN", "value": f"{CODE_DIR}/plan.json"},
                    {"name": "MESHREG_GC_SHARED", "value": SHARED_DIR},
                    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONPATH", "value": CODE_DIR}, *env],
            "resources": resources, "securityContext": _security(), "volumeMounts": _mounts(*mounts)}


def prepare(reg: Registry) -> Object:
    """The init container: the FIFOs the garbage-collect containers wait on."""
    return _python(reg, "prepare", ["python", "-m", "meshreg.gcjob", "prepare"], env=[], mounts=[],
                   resources={"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})


def coordinator(reg: Registry) -> Object:
    env = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    mounts = [{"name": "config", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True}]
    if not reg.storage.s3:  # to size the blobs garbage-collect removes
        mounts.append({"name": "data", "mountPath": DATA_DIR, "readOnly": True})
    return _python(reg, CONTAINER, ["python", "-m", "meshreg.gcjob"], env=env, mounts=mounts,
                   resources={"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})


def collector(reg: Registry, name: str) -> Object:
    """distribution's garbage-collect with the registry's storage, waiting on its FIFO for its configuration."""
    untagged = ["--delete-untagged"] if _gc(reg).delete_untagged and name != TAGGED else []
    flags = ["--dry-run", *untagged] if name == PLAN else untagged
    out: Object = {"name": name, "image": reg.image, "imagePullPolicy": "IfNotPresent",
                   "command": ["registry", "garbage-collect", *flags, f"{SHARED_DIR}/{name}.yml"],
                   "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "1Gi"}},
                   "securityContext": _security(),
                   "volumeMounts": [{"name": "shared", "mountPath": SHARED_DIR},
                                    *([] if reg.storage.s3 else [{"name": "data", "mountPath": DATA_DIR}])]}
    if reg.storage.s3:  # as AWS_* variables: REGISTRY_STORAGE_S3_* would add an s3 driver to the empty storage's
        from meshreg.render import objectstorage  # with object storage only

        keys = {"REGISTRY_STORAGE_S3_ACCESSKEY": "AWS_ACCESS_KEY_ID", "REGISTRY_STORAGE_S3_SECRETKEY":
                "AWS_SECRET_ACCESS_KEY"}
        out["env"] = [{**e, "name": keys[e["name"]]} for e in objectstorage.env(reg) if e["name"] in keys]
    return out


def _volumes(reg: Registry) -> list[Object]:
    items = [{"key": key(m), "path": m} for m in MODULES] + [{"key": "plan.json", "path": "plan.json"}]
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
        "terminationGracePeriodSeconds": 30,  # time enough to make the registry writable again when stopped
        "initContainers": [prepare(reg)],
        "containers": [coordinator(reg), *(collector(reg, name) for name in collectors(reg))],
        "volumes": _volumes(reg), **podspec.pull_secrets(cfg)}
    # The ReadWriteOnce volume is attached where the registry runs: go there.
    follow = None if reg.storage.s3 else {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": registry_pods(cfg, reg)}, "topologyKey": "kubernetes.io/hostname"}]}}
    spec.update(podspec.placement(_gc(reg).scheduling, own=follow))
    return {"metadata": {"labels": {**common(cfg), COMPONENT: "gc", **gc_pods(cfg, reg), **sidecar(cfg)},
                         "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER,
                                         "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
                                         "traffic.sidecar.istio.io/excludeOutboundPorts": API_PORT}},
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
