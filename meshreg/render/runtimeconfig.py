"""Runtime config (opt-in, spec.nodeProxy.runtimeConfig): a DaemonSet that writes containerd hosts.toml files and
CRI-O registries.conf.d drop-ins saying the node proxy's ports speak plain HTTP, and removes exactly those files when
it goes away."""

from __future__ import annotations

import functools
import ipaddress
import pkgutil
import re
from dataclasses import dataclass

from meshreg.config import Config
from meshreg.objects import Labels, Object
from meshreg.render import podspec, sha256
from meshreg.render.labels import COMPONENT, INJECT, INSTANCE, common, metadata
from meshreg.render.labels import NAME as APP_NAME
from meshreg.render.nodeproxy import ports

NAME = "node-proxy-runtime-config"
LABEL = "runtime-config"  # its component and app name
SCRIPT = "runtime-config.sh"
MOUNT = "/etc/meshreg/runtime-config"
INTERVAL = 60  # seconds between passes: how soon a file deleted by someone else (k3s at start) is back
K3S_DIRS = ("/var/lib/rancher/k3s/", "/var/lib/rancher/rke2/")


@dataclass(frozen=True)
class File:
    """One file kept on a node: `path` relative to the runtime's directory, `key` in the ConfigMap."""

    runtime: str
    path: str
    text: str

    @property
    def key(self) -> str:
        return f"{self.runtime}.{re.sub(r'[^-._a-zA-Z0-9]', '_', self.path.replace('/', '.'))}"


@functools.cache
def script() -> str:
    """The runtime config script, shipped as package data (pkgutil reads it as importlib.resources would, without
    importing what that needs: zipfile, tempfile...)."""
    data = pkgutil.get_data("meshreg.render", SCRIPT)
    assert data is not None, "meshreg.render has no loader that reads files"  # every file system or zip import has one
    return data.decode("utf-8")


def marker(cfg: Config) -> str:
    """The file in each runtime directory that lists what this instance wrote there (namespace and name: one
    instance's marker is never another's)."""
    return f".meshreg.{cfg.namespace}.{cfg.name}"


def hosts(cfg: Config, port: int) -> list[str]:
    """The names pod specs may pull a port under: localhost, and the node proxy's loopback address."""
    ip = ipaddress.ip_address(cfg.node_proxy.host_ip)
    return [f"localhost:{port}", f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"]


def _hosts_toml(cfg: Config, host: str) -> str:
    return (f"# Written by meshreg ({cfg.namespace}/{cfg.name}): the node proxy serves {host} over plain HTTP, "
            "read-only.\n"
            f'server = "http://{host}"\n\n'
            f'[host."http://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n')


def _drop_in(cfg: Config, port: int) -> str:
    entries = "".join(f'\n[[registry]]\nlocation = "{host}"\ninsecure = true\n' for host in hosts(cfg, port))
    return (f"# Written by meshreg ({cfg.namespace}/{cfg.name}): the node proxy serves port {port} over plain HTTP, "
            f"read-only.\n{entries}")


def files(cfg: Config) -> list[File]:
    """Every file the runtime config writes, for each enabled runtime and each registry port."""
    out = []
    for runtime, _ in cfg.node_proxy.runtime_config.directories:
        for port in ports(cfg):
            if runtime == "containerd":
                out += [File(runtime, f"{host}/hosts.toml", _hosts_toml(cfg, host)) for host in hosts(cfg, port)]
            else:
                out.append(File(runtime, f"meshreg-{port}.conf", _drop_in(cfg, port)))
    return out


def _pods(cfg: Config) -> Labels:
    return {INSTANCE: cfg.name, APP_NAME: LABEL}


def _meta(cfg: Config) -> Object:
    return metadata(cfg, NAME, extra={COMPONENT: LABEL})


def objects(cfg: Config) -> list[Object]:
    """ServiceAccount, ConfigMap and DaemonSet, or nothing when no runtime is enabled."""
    if not cfg.node_proxy.runtime_config.enabled:
        return []
    kept = files(cfg)
    wanted = config_map(cfg, kept)
    return [service_account(cfg), wanted, daemon_set(cfg, kept=kept, wanted=wanted)]


def service_account(cfg: Config) -> Object:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(cfg),
            "automountServiceAccountToken": False}


def config_map(cfg: Config, kept: list[File]) -> Object:
    """The script and the files to keep on nodes (`kept`, from files(cfg))."""
    data = {SCRIPT: script(), **{f.key: f.text for f in kept}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cfg),
            "data": dict(sorted(data.items()))}


def _container(cfg: Config, runtime: str, directory: str, *, kept: list[File]) -> Object:
    rc = cfg.node_proxy.runtime_config
    command = ["sh", f"{MOUNT}/{SCRIPT}"]
    env = {"MESHREG_TARGET": directory, "MESHREG_SOURCE": f"{MOUNT}/{runtime}",
           "MESHREG_FILES": " ".join(f.path for f in kept if f.runtime == runtime),
           "MESHREG_MARKER": marker(cfg), "MESHREG_INTERVAL": str(INTERVAL)}
    return {
        "name": runtime,
        "image": rc.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*command, "run"],
        "env": [*({"name": k, "value": v} for k, v in env.items()),
                {"name": "MESHREG_OWNER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
        # Ready once every file is in place and owned by this pod (`check` says what is missing).
        "readinessProbe": {"exec": {"command": [*command, "check"]}, "periodSeconds": 20, "timeoutSeconds": 5},
        "resources": rc.resources.as_dict(),
        # Root, because the runtime's directory belongs to root; nothing more: no capability (root owns what it
        # writes to), no privilege escalation, a read-only image.
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True, "runAsGroup": 0, "runAsNonRoot": False, "runAsUser": 0},
        "volumeMounts": [{"name": "wanted", "mountPath": MOUNT, "readOnly": True},
                         {"name": runtime, "mountPath": directory}],
    }


def _volumes(cfg: Config, kept: list[File]) -> list[Object]:
    items = [{"key": SCRIPT, "path": SCRIPT}] + [{"key": f.key, "path": f"{f.runtime}/{f.path}"} for f in kept]
    wanted = {"name": "wanted", "configMap": {"name": NAME, "items": items}}
    # hostPath: only the runtime's directory, created (root, 0755) where it does not exist yet.
    return [wanted] + [{"name": runtime, "hostPath": {"path": directory, "type": "DirectoryOrCreate"}}
                       for runtime, directory in cfg.node_proxy.runtime_config.directories]


def daemon_set(cfg: Config, *, kept: list[File], wanted: Object) -> Object:
    """The pods that keep `kept` on every node, from the ConfigMap `wanted` (its hash rolls them when it changes)."""
    rc = cfg.node_proxy.runtime_config
    digest = sha256.hexdigest(repr(sorted(wanted["data"].items())).encode())[:16]
    spec = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": {"kubernetes.io/os": "linux", **dict(rc.node_selector)},
        "tolerations": [{"operator": "Exists"}],  # wherever the node proxy runs
        "terminationGracePeriodSeconds": 30,  # time to remove the files on SIGTERM
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(cfg, runtime, directory, kept=kept) for runtime, directory in rc.directories],
        "volumes": _volumes(cfg, kept),
        **podspec.pull_secrets(cfg),
    }
    template = {"metadata": {"labels": {**common(cfg), **_pods(cfg), COMPONENT: LABEL,
                                        INJECT: "false"},  # not in the mesh: no traffic at all
                             "annotations": {"meshreg.dev/config-hash": digest}},
                "spec": spec}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(cfg),
            "spec": {"selector": {"matchLabels": _pods(cfg)},
                     # The new pod starts (and takes the files over) before the old one stops: no gap on a node.
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1,
                                                                                   "maxUnavailable": 0}},
                     "template": template}}


def notices(cfg: Config) -> list[str]:
    """Hints for directories that another tool rewrites."""
    return [f"nodeProxy.runtimeConfig.{runtime}: {directory} is generated by k3s/RKE2 and deleted at every start; "
            f"meshreg's files come back within {INTERVAL} s, but registries.yaml is the lasting place "
            "(docs/node-runtimes.md)"
            for runtime, directory in cfg.node_proxy.runtime_config.directories if directory.startswith(K3S_DIRS)]
