"""The short-lived objects `meshreg verify` creates: a temporary namespace, a bystander ServiceAccount, the probe
script in a ConfigMap owned by its Job (so the Job's TTL removes both), probe Jobs, and the kubelet-pull Pod."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from meshreg.cluster.api import Object
from meshreg.config import Config
from meshreg.render.labels import INJECT, namespace_injection, sidecar
from meshreg.verify.placement import ANYWHERE, Placement
from meshreg.verify.plan import Probe

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshreg-verify"}
RUN = "meshreg.dev/verify"
EXPIRES = "meshreg.dev/verify-expires"
DEFAULT_IMAGE = "docker.io/curlimages/curl:8.11.1"  # sh, curl, sha256sum: all the probe needs
UID = 65534  # any non-root user runs sh and curl; numeric so runAsNonRoot can be checked
TTL = 600  # seconds a finished Job (and its ConfigMap) stays if verify could not delete it
Platform = tuple[str, str]  # a node's (operating system, architecture), as its status.nodeInfo says


def script() -> str:
    return resources.files("meshreg.verify").joinpath("probe.sh").read_text(encoding="utf-8")


def _meta(name: str, namespace: str | None, run: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, RUN: run}}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def namespace(cfg: Config, name: str, *, run: str, expires: str) -> Object:
    """Injected like the registry's namespace; privileged Pod Security for the hostNetwork node-proxy probe."""
    meta = _meta(name, None, run, annotations={EXPIRES: expires})
    meta["labels"].update({**namespace_injection(cfg), "pod-security.kubernetes.io/enforce": "privileged"})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(name: str, namespace: str, *, run: str) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace, run),
            "automountServiceAccountToken": False}


def config_map(job: Object) -> Object:
    """The probe script, named like its Job and owned by it."""
    meta = job["metadata"]
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
             "blockOwnerDeletion": False}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(meta["name"], meta["namespace"], meta["labels"][RUN], ownerReferences=[owner]),
            "data": {"probe.sh": script()}}


def _container(*, image: str, env: dict[str, str]) -> dict[str, Any]:
    return {"name": "probe", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "/probe/probe.sh"],
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "securityContext": _restricted(),
            "volumeMounts": [{"name": "probe", "mountPath": "/probe", "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}]}


def _restricted() -> dict[str, Any]:
    # Per container: pod-level runAsNonRoot would also bind istio-init, which needs root.
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID}


def job(probe: Probe, *, cfg: Config, run: str, image: str, deadline: int, node: str | None,
        platform: Platform, placement: Placement = ANYWHERE) -> Object:
    """A probe Job: one pod, never retried, gone `TTL` seconds after it finished, killed after `deadline`. It
    tolerates only what `placement` says (nothing by default: a probe must not land where pods cannot run), and
    pulls with the config's imagePullSecrets."""
    name = f"meshreg-verify-{run}-{probe.name}"
    labels = {**MANAGED_BY, RUN: run, **(sidecar(cfg) if probe.sidecar else {INJECT: "false"})}
    annotations: dict[str, str] = {}
    if probe.sidecar:
        # Start the probe only once the sidecar is ready (the probe also waits for it).
        annotations["proxy.istio.io/config"] = json.dumps({"holdApplicationUntilProxyStarts": True})
    env = {"PROBE_STEPS": "\n".join(s.line() for s in probe.steps), "PROBE_SIDECAR": "wait" if probe.sidecar
           else "none", "PROBE_RUN": run, "PROBE_OS": platform[0], "PROBE_ARCH": platform[1]}
    spec: dict[str, Any] = {"restartPolicy": "Never", "serviceAccountName": probe.service_account,
                            "automountServiceAccountToken": False, "enableServiceLinks": False,
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [_container(image=image, env=env)],
                            "volumes": [{"name": "probe", "configMap": {"name": name}},
                                        {"name": "tmp", "emptyDir": {}}],
                            **placement.pod_fields(), **pull_secrets(cfg)}
    if node:
        spec["nodeName"] = node
    if probe.host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(name, probe.namespace, run),
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline, "ttlSecondsAfterFinished": TTL,
                     "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}}}


def pull_secrets(cfg: Config) -> dict[str, Any]:
    """The config's imagePullSecrets, for the probe image (a private mirror's credentials)."""
    return {"imagePullSecrets": [{"name": n} for n in cfg.image_pull_secrets]} if cfg.image_pull_secrets else {}


def pull_pod(*, name: str, namespace: str, run: str, image: str, node: str, deadline: int,
             placement: Placement = ANYWHERE) -> Object:
    """A pod whose only job is to make the kubelet on `node` pull `image` (what the container does next is moot).
    Always: the pull itself is the test, from the node proxy, which needs no pull secret; it tolerates what the
    probes tolerate (a NoExecute taint would evict it)."""
    meta = _meta(name, namespace, run)
    meta["labels"][INJECT] = "false"
    container = {"name": "pull", "image": image, "imagePullPolicy": "Always", "command": ["/meshreg-verify"],
                 "securityContext": _restricted()}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "restartPolicy": "Never", "activeDeadlineSeconds": deadline,
                     "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [container],
                     **placement.pod_fields()}}
