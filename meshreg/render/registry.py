"""The registry itself: namespace, accounts, distribution config, storage, Deployment, Service and mTLS."""

from __future__ import annotations

from meshreg.config import REGISTRY_PORT, Config, Registry
from meshreg.objects import Labels, Object
from meshreg.render import podspec, sha256, yamltext
from meshreg.render.labels import (
    COMPONENT,
    REGISTRY,
    common,
    is_ambient,
    metadata,
    namespace_injection,
    registry_pods,
    sidecar,
)

DATA_DIR = "/var/lib/registry"
# Argo CD and Flux must never delete registry data, whatever happens to the manifests in Git.
KEEP_ANNOTATIONS = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "helm.sh/resource-policy": "keep",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}
RUN_AS = 1000  # registry:2 runs as any user once its data directory is writable (fsGroup)
# Istio 1.8+ honours this per pod (with native sidecars, Istio 1.27+ default, Kubernetes orders the start anyway).
# The drain: distribution 2.8 stops serving at once on SIGTERM, so the sidecar's default 5 s drain keeps nothing
# alive; with one replica (Recreate) it only delays the new pod. 1 s cut reads' pause at each restart (gc's
# read-only switch, an upgrade) from about 10 s to 6 s on the real stack (docs/gc.md).
HOLD_UNTIL_PROXY_STARTS = "holdApplicationUntilProxyStarts: true\nterminationDrainDuration: 1s\n"
# A feature's module (ambient, ingress, mirror, objectstorage) is imported where the config uses the feature, so that
# a render without it does not load it.


def namespace(cfg: Config) -> Object:
    injection = namespace_injection(cfg)
    if is_ambient(cfg):
        from meshreg.render import ambient

        injection = ambient.namespace_labels(cfg)
    # Baseline Pod Security forbids hostPort, which the node proxy needs.
    security = {"pod-security.kubernetes.io/enforce": "privileged"} if cfg.node_proxy.enabled else {}
    ingress = {}
    if cfg.ingress:
        from meshreg.render.ingress import NAMESPACE_ANNOTATION

        ingress = {NAMESPACE_ANNOTATION: cfg.ingress.gateway.namespace}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": metadata(cfg, cfg.namespace, namespace=None, extra={**injection, **security},
                                 annotations={**KEEP_ANNOTATIONS, **ingress})}


def service_account(cfg: Config, name: str) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(cfg, name),
            "automountServiceAccountToken": False}


def distribution_config(cfg: Config, reg: Registry) -> Object:
    """The registry's own config.yml (CNCF distribution 2.x)."""
    out: Object = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": DATA_DIR},
            "delete": {"enabled": reg.delete_enabled},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}},
        },
        "http": {
            "addr": f":{REGISTRY_PORT}",
            # Clients reach the registry under several names (Service, node proxy): relative
            # Location headers stay right under each of them.
            "relativeurls": True,
            "draintimeout": "25s",
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if reg.mirror:
        # Credentials come from the Secret through REGISTRY_PROXY_USERNAME/PASSWORD, never from this file. The
        # upstream is reached through the sidecar (render/mirror.py), so that start-up never sees a dead connection.
        from meshreg.render.mirror import remote_url

        out["proxy"] = {"remoteurl": remote_url(cfg, reg)}
    if reg.storage.s3:
        from meshreg.render import objectstorage

        del out["storage"]["filesystem"]
        out["storage"] = {**objectstorage.storage_section(reg), **out["storage"]}
    return out


def config_text(cfg: Config, reg: Registry) -> str:
    return yamltext.safe_dump(distribution_config(cfg, reg), sort_keys=False, default_flow_style=False)


def _meta(cfg: Config, reg: Registry, name: str, *, annotations: Labels | None = None) -> Object:
    return metadata(cfg, name, extra={COMPONENT: "registry", REGISTRY: reg.name}, annotations=annotations)


def config_map(cfg: Config, reg: Registry) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cfg, reg, f"{reg.name}-config"),
            "data": {"config.yml": config_text(cfg, reg)}}


def persistent_volume_claim(cfg: Config, reg: Registry) -> Object:
    spec: Object = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": reg.storage.size}}}
    if reg.storage.storage_class_name is not None:
        spec["storageClassName"] = reg.storage.storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(cfg, reg, f"{reg.name}-data", annotations=KEEP_ANNOTATIONS), "spec": spec}


def service(cfg: Config, reg: Registry) -> Object:
    meta = _meta(cfg, reg, reg.name)
    if is_ambient(cfg):
        from meshreg.render import ambient

        meta["labels"].update(ambient.service_labels(cfg))
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": registry_pods(cfg, reg),
                     # appProtocol http: Istio applies HTTP rules (methods, paths) only to ports it knows are HTTP.
                     "ports": [{"name": "http", "port": REGISTRY_PORT, "targetPort": "http", "protocol": "TCP",
                                "appProtocol": "http"}]}}


def _probe(*, period: int, failures: int) -> Object:
    return {"httpGet": {"path": "/v2/", "port": "http"}, "periodSeconds": period, "timeoutSeconds": 3,
            "failureThreshold": failures}


def _credentials(reg: Registry) -> list[Object]:
    if not (reg.mirror and reg.mirror.credentials_secret):
        return []
    return [{"name": f"REGISTRY_PROXY_{key.upper()}",
             "valueFrom": {"secretKeyRef": {"name": reg.mirror.credentials_secret, "key": key}}}
            for key in ("username", "password")]


def _container(reg: Registry) -> Object:
    env = _credentials(reg)
    if reg.storage.s3:
        from meshreg.render import objectstorage

        env += objectstorage.env(reg)
    return {
        "name": "registry",
        "image": reg.image,
        **({"env": env} if env else {}),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": REGISTRY_PORT, "protocol": "TCP"}],
        "startupProbe": _probe(period=2, failures=30),
        "readinessProbe": _probe(period=5, failures=3),
        "livenessProbe": _probe(period=10, failures=6),
        "resources": reg.resources.as_dict(),
        "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsGroup": RUN_AS, "runAsNonRoot": True, "runAsUser": RUN_AS,
        },
        "volumeMounts": [
            *([] if reg.storage.s3 else [{"name": "data", "mountPath": DATA_DIR}]),
            {"name": "config", "mountPath": "/etc/docker/registry", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def pod_labels(cfg: Config, reg: Registry) -> Labels:
    mesh = sidecar(cfg)
    if is_ambient(cfg):
        from meshreg.render import ambient

        mesh = ambient.registry_pod_labels(cfg)
    return {**common(cfg), COMPONENT: "registry", **registry_pods(cfg, reg), **mesh}


def _start_order(cfg: Config) -> Labels:
    """The registry starts once its sidecar is ready: a mirror pings its upstream while starting, and a sidecar that
    is not listening yet makes distribution panic; and the sidecar stops soon after it. Ambient pods have no
    sidecar."""
    return {} if is_ambient(cfg) else {"proxy.istio.io/config": HOLD_UNTIL_PROXY_STARTS}


def deployment(cfg: Config, reg: Registry) -> Object:
    config_hash = sha256.hexdigest(config_text(cfg, reg).encode())[:16]
    template: Object = {
        "metadata": {
            "labels": pod_labels(cfg, reg),
            "annotations": {"kubectl.kubernetes.io/default-container": "registry",
                            "meshreg.dev/config-hash": config_hash, **_start_order(cfg)},
        },
        "spec": {
            "serviceAccountName": reg.name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            # Pod-level runAsNonRoot would also bind istio-init, which needs root; it is set per container.
            "securityContext": {"fsGroup": RUN_AS, "fsGroupChangePolicy": "OnRootMismatch",
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container(reg)],
            "volumes": [
                *([] if reg.storage.s3 else
                  [{"name": "data", "persistentVolumeClaim": {"claimName": f"{reg.name}-data"}}]),
                {"name": "config", "configMap": {"name": f"{reg.name}-config"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
    # ReadWriteOnce volume: the old pod must let go before the new one mounts it.
    strategy: Object = {"type": "Recreate"}
    spread = None
    if reg.storage.s3:
        from meshreg.render import objectstorage

        strategy = objectstorage.rolling_update()
        spread = objectstorage.spread(registry_pods(cfg, reg))
    template["spec"].update({**podspec.placement(reg.scheduling, own=spread), **podspec.pull_secrets(cfg)})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(cfg, reg, reg.name),
            "spec": {"replicas": reg.replicas, "revisionHistoryLimit": 3, "strategy": strategy,
                     "selector": {"matchLabels": registry_pods(cfg, reg)}, "template": template}}


def peer_authentication(cfg: Config, reg: Registry) -> Object:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": _meta(cfg, reg, reg.name),
            "spec": {"selector": {"matchLabels": registry_pods(cfg, reg)}, "mtls": {"mode": "STRICT"}}}


def disruption_budget(cfg: Config, reg: Registry) -> Object:
    """With several replicas, a drain takes them down one at a time."""
    from meshreg.render import objectstorage

    return objectstorage.disruption_budget(_meta(cfg, reg, reg.name), registry_pods(cfg, reg))


def storage_entry(cfg: Config, reg: Registry) -> Object:
    from meshreg.render import objectstorage

    return objectstorage.service_entry(reg, _meta(cfg, reg, f"{reg.name}-s3"))
