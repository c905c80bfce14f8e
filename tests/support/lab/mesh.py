"""A one-registry mesh on loopback, built from what meshreg renders: registry, PKI, sidecar and node proxy Envoys."""

from __future__ import annotations

from pathlib import Path

from meshreg.config import Config, from_text
from meshreg.render import render

from . import envoy, pushproxy, rbac, telemetry
from .pki import Authority, Identity, spiffe
from .processes import Server, free_port, start_envoy

FOREIGN_TRUST_DOMAIN = "foreign.example"
SIDECAR = "registry-sidecar"  # the registry sidecar's name for its stdout file


def one(objects: list[dict], kind: str, name: str) -> dict:
    """The rendered object of this kind and name, checked to be the only one."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in the render, found {len(found)}"
    return found[0]


class Lab:
    """Everything started for one meshreg config; `close()` stops it all."""

    def __init__(self, config_text: str, root: Path, *, tuning: envoy.Tuning | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config_file = root / "meshreg.yaml"
        self.config_file.write_text(config_text)
        self.cfg: Config = from_text(config_text, name=str(self.config_file))
        self.objects = render(self.cfg)
        self.tuning = tuning or envoy.Tuning()
        self.servers: list[Server] = []
        self.ca = Authority(root / "pki", "mesh")
        try:
            self._start_registry()
            self._start_envoy()
        except BaseException:
            self.close()
            raise

    # --- identities -------------------------------------------------------------------------------------------
    def identity(self, ns_sa: str) -> Identity:
        """A mesh workload certificate for `NS/SA` in the configured trust domain."""
        return self.ca.workload(self.cfg.trust_domain, ns_sa)

    def foreign_ca_identity(self, ns_sa: str) -> Identity:
        """Same SPIFFE name, signed by a CA the mesh does not trust."""
        other = Authority(self.root / "pki-other", "other")
        return other.issue(spiffe(self.cfg.trust_domain, ns_sa), label=ns_sa.replace("/", "."), trust=self.ca.ca_file)

    def foreign_domain_identity(self, ns_sa: str) -> Identity:
        """Signed by the mesh CA, but for another trust domain."""
        return self.ca.issue(spiffe(FOREIGN_TRUST_DOMAIN, ns_sa), label="foreign." + ns_sa.replace("/", "."))

    # --- registry ---------------------------------------------------------------------------------------------
    def _start_registry(self) -> None:
        config = one(self.objects, "ConfigMap", "registry-config")["data"]["config.yml"]
        (self.root / "registry").mkdir(exist_ok=True)
        (self.root / "registry" / "config.yml").write_text(config)  # unchanged: overrides come from the environment
        self.storage = self.root / "registry" / "data"
        self.registry_port = free_port()
        env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(self.storage),
               "REGISTRY_HTTP_ADDR": f"127.0.0.1:{self.registry_port}"}
        server = Server(["docker-registry", "serve", str(self.root / "registry" / "config.yml")],
                        log=self.root / "registry.log", env=env)
        self.servers.append(server)
        server.wait_http(f"http://{self.direct}/v2/")

    @property
    def direct(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    def repositories(self) -> set[str]:
        """Repositories the registry holds anything for (uploads included), read from its storage directly."""
        base = self.storage / "docker" / "registry" / "v2" / "repositories"
        if not base.exists():
            return set()
        marks = {"_uploads", "_layers", "_manifests"}
        return {str(p.parent.relative_to(base)) for p in base.rglob("*") if p.name in marks and p.is_dir()}

    # --- envoy --------------------------------------------------------------------------------------------------
    def _pod(self, kind: str, name: str) -> tuple[dict, str]:
        spec = one(self.objects, kind, name)["spec"]["template"]
        return spec["metadata"]["labels"], spec["spec"]["serviceAccountName"]

    def _policies_for(self, labels: dict) -> list[dict]:
        return [o for o in self.objects if rbac.selects(o, namespace=self.cfg.namespace, pod_labels=labels)]

    def _node_proxy_route(self) -> str:
        """The node proxy's route timeout, after checking Gateway and VirtualService really lead to the registry."""
        gateway = one(self.objects, "Gateway", "node-proxy")["spec"]
        [server] = gateway["servers"]
        assert server["port"]["protocol"] == "HTTP" and server["port"]["number"] == self.cfg.node_proxy.port
        vs = one(self.objects, "VirtualService", "node-proxy")["spec"]
        assert vs["gateways"] == ["node-proxy"]
        [route] = vs["http"]
        for match in route.get("match", []):  # the lab's one listener stands for the Gateway's one port
            assert match == {"port": server["port"]["number"]}, f"lab cannot translate the match {match}"
        [dest] = route["route"]
        registry_svc = one(self.objects, "Service", "registry")
        assert dest["destination"]["host"] == f"registry.{self.cfg.namespace}.svc.cluster.local"
        assert dest["destination"]["port"]["number"] == registry_svc["spec"]["ports"][0]["port"]
        return route.get("timeout", "0s")  # no timeout field: Istio sets none

    def _start_envoy(self) -> None:
        registry_labels, registry_sa = self._pod("Deployment", "registry")
        self.registry_identity = self.ca.issue(spiffe(self.cfg.trust_domain, f"{self.cfg.namespace}/{registry_sa}"),
                                               label="registry", server=True)
        self.sidecar_port, admin = free_port(), free_port()
        self.admin = f"127.0.0.1:{admin}"  # Envoy's admin interface: /stats counts what each listener served
        listeners = [envoy.sidecar_listener(port=self.sidecar_port, server=self.registry_identity,
                                            trust_domain=self.cfg.trust_domain, tuning=self.tuning,
                                            rbac=rbac.http_filters(self._policies_for(registry_labels)),
                                            access_log=self.access_logs(SIDECAR, registry_labels, mode="SERVER"))]
        clusters = [envoy.registry_cluster(self.registry_port, self.tuning)]
        if self.cfg.node_proxy.enabled:
            proxy_labels, proxy_sa = self._pod("DaemonSet", "node-proxy")
            self.node_proxy_identity = self.identity(f"{self.cfg.namespace}/{proxy_sa}")
            self.node_proxy_port = free_port()
            listeners.append(envoy.gateway_listener(
                "node-proxy", port=self.node_proxy_port, cluster="sidecar", tuning=self.tuning,
                rbac=rbac.http_filters(self._policies_for(proxy_labels)), route_timeout=self._node_proxy_route(),
                access_log=self.access_logs("node-proxy", proxy_labels, mode="CLIENT")))
            clusters.append(envoy.sidecar_cluster(port=self.sidecar_port, client=self.node_proxy_identity,
                                                  registry_uri=self.registry_identity.uri, tuning=self.tuning))
        if self.cfg.registry.push_proxy:
            listener, cluster = pushproxy.listener_and_cluster(self, self.cfg.registry)
            listeners.append(listener)
            clusters.append(cluster)
        self._more_envoy(listeners, clusters)
        self.servers.append(start_envoy(envoy.bootstrap(admin_port=admin, listeners=listeners, clusters=clusters),
                                        self.root / "envoy.json", concurrency=self.tuning.concurrency))

    # --- access logs (the Telemetry API) -------------------------------------------------------------------------
    def stdout(self, proxy: str) -> Path:
        """The file that stands for `proxy`'s container log (its /dev/stdout)."""
        (self.root / "stdout").mkdir(exist_ok=True)
        return self.root / "stdout" / f"{proxy}.log"

    def access_logs(self, proxy: str, pod_labels: dict, *, mode: str, namespace: str | None = None) -> list[dict]:
        """What istiod would give `proxy`'s HTTP connection manager for the rendered Telemetry objects."""
        return telemetry.access_logs(self.objects, namespace=namespace or self.cfg.namespace, pod_labels=pod_labels,
                                     mode=mode, stdout=self.stdout(proxy))

    def proxy_log(self, proxy: str) -> str:
        """What `proxy` has written to its stdout so far (Envoy flushes access logs every 100 ms)."""
        path = self.stdout(proxy)
        return path.read_text() if path.exists() else ""

    def _more_envoy(self, listeners: list[dict], clusters: list[dict]) -> None:
        """Where a lab with more gateways (tests/e2e/lab/ingress.py) adds its listeners and clusters."""

    @property
    def sidecar(self) -> str:
        return f"127.0.0.1:{self.sidecar_port}"

    @property
    def entry(self) -> str:
        """Where an in-mesh client's requests to the registry Service go: the registry's sidecar."""
        return self.sidecar

    @property
    def node_proxy(self) -> str:
        return f"127.0.0.1:{self.node_proxy_port}"

    @property
    def push_proxy(self) -> str:
        return f"127.0.0.1:{self.push_proxy_port}"

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()
