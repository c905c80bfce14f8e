"""What a registry on object storage needs: distribution's S3 driver settings, credentials from a Secret, and
what several replicas need to act as one registry (a shared upload secret, spreading, a disruption budget).

Uploads are stateful: distribution signs the upload's state with `http.secret` and hands it to the client, so
with more than one replica every replica must share it (else an upload begun on one fails on the next). It comes
from the credentials Secret (key httpSecret), like the S3 keys, and is never rendered.

Blob downloads are not redirected to presigned S3 URLs unless `redirect: true`: with a redirect the client fetches
from the bucket's endpoint itself, so the kubelet behind the node proxy (and every puller) would need a route to
S3 and the pull would leave the mesh; without it the registry streams blobs, which is why it scales out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshreg.config import Registry
from meshreg.objects import Labels, Object

if TYPE_CHECKING:
    from meshreg.config.model import S3

SECRET_KEYS = {"REGISTRY_STORAGE_S3_ACCESSKEY": "accessKey", "REGISTRY_STORAGE_S3_SECRETKEY": "secretKey",
               "REGISTRY_HTTP_SECRET": "httpSecret"}


def _s3(reg: Registry) -> S3:
    """The registry's object storage: everything here is for a registry that has it."""
    assert reg.storage.s3 is not None, f"registry {reg.name} has no storage.s3"
    return reg.storage.s3


def storage_section(reg: Registry) -> Object:
    """distribution's `storage.s3` (credentials come from the environment) and its redirect setting."""
    s3 = _s3(reg)
    driver: Object = {"region": s3.region, "bucket": s3.bucket, "v4auth": True}
    if s3.endpoint:
        driver["regionendpoint"] = s3.endpoint
        driver["secure"] = s3.endpoint.startswith("https:")
    if s3.root_directory:
        driver["rootdirectory"] = s3.root_directory
    return {"s3": driver, "redirect": {"disable": not s3.redirect}}


def env(reg: Registry) -> list[Object]:
    """The S3 keys and the shared upload secret, from the credentials Secret."""
    secret = _s3(reg).credentials_secret
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for name, key in SECRET_KEYS.items()]


def spread(pod_labels: Labels) -> Object:
    """Prefer one replica per node, so a node going down takes at most one."""
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": pod_labels},
                                           "topologyKey": "kubernetes.io/hostname"}}]}}


def rolling_update() -> Object:
    """No volume to hand over: start the new pod before stopping an old one."""
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def disruption_budget(meta: Object, selector: Labels) -> Object:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}}


def service_entry(reg: Registry, meta: Object) -> Object:
    """Lets the registry's sidecar reach an S3 endpoint outside the mesh (where only known hosts are allowed)."""
    s3 = _s3(reg)
    protocol = "HTTP" if (s3.endpoint or "https:").startswith("http:") else "TLS"
    spec: Object = {"hosts": [s3.host], "exportTo": ["."], "location": "MESH_EXTERNAL", "resolution": "DNS",
                  "ports": [{"number": s3.port, "name": protocol.lower(), "protocol": protocol}]}
    if not s3.endpoint:  # AWS: virtual-hosted-style bucket host, and the regional endpoint
        spec["hosts"] = sorted({s3.host, f"s3.{s3.region}.amazonaws.com"})
    elif s3.by_address:  # hosts must be names: name it, and match the address
        spec.update(hosts=[f"{reg.name}-s3.storage.internal"], addresses=[f"{s3.host}/32"], resolution="NONE")
    return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": meta, "spec": spec}
